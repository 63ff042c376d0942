"""Resolve tool names to runnable tools: code tools from the registry, HTTP tools and
per-tool settings (enabled, execution, timeout) from the Tool rows. Needs Django."""
from __future__ import annotations

import logging
from typing import Any, Sequence

from agents.credentials import credential_secrets
from agents.models import Tool

from .bound import BoundTool
from .egress import Secret
from .function_tool import DEFAULT_TIMEOUT_MS
from .http import HttpTool
from .registry import ToolRegistry, registry as default_registry
from .secrets import header_credentials

logger = logging.getLogger("agents.tools")


def _rows(names: Sequence[str]) -> dict[str, Any]:
    return {row.name: row for row in Tool.objects.filter(name__in=list(names))}


def _credentials(headers: Any) -> dict[str, Secret]:
    names = header_credentials(headers)
    if not names:
        return {}
    return credential_secrets(names)


def bind_row(row: Any | None, code_tool: Any | None) -> BoundTool | None:
    """The runnable form of one tool; None if it is disabled or has no implementation.

    The row, when there is one, decides execution and timeout (operators edit them in the
    admin; start-up sync writes the decorator's explicit values into it).
    """
    if row is not None and not row.enabled:
        return None
    if row is not None and row.kind == "http":
        tool = HttpTool.from_row(row, credentials=_credentials(row.http_headers))
        return BoundTool(tool, row.execution or "inline", row.timeout_ms or DEFAULT_TIMEOUT_MS)
    if code_tool is None:
        return None
    if row is None:
        return BoundTool.of(code_tool)
    return BoundTool(code_tool, row.execution or "inline", row.timeout_ms or DEFAULT_TIMEOUT_MS)


def load_tools(
    names: Sequence[str], *, registry: ToolRegistry | None = None
) -> tuple[list[BoundTool], list[str]]:
    reg = registry or default_registry
    reg.ensure_discovered()
    rows = _rows(names)
    bound: list[BoundTool] = []
    missing: list[str] = []
    for name in dict.fromkeys(names):
        b = bind_row(rows.get(name), reg.get(name))
        if b is None:
            missing.append(name)
        else:
            bound.append(b)
    return bound, missing


def load_tool(name: str, *, registry: ToolRegistry | None = None) -> BoundTool | None:
    bound, _ = load_tools([name], registry=registry)
    return bound[0] if bound else None
