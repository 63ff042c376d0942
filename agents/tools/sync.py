"""Sync the discovered code tools into Tool rows (at worker/web start and by validate_tools)."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from agents.models import Tool

from .registry import ToolRegistry, registry as default_registry

logger = logging.getLogger("agents.tools")


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    orphaned: list[str] = field(default_factory=list)  # python rows with no code behind them


def parameter_definitions(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(parameters.get("required") or ())
    out = []
    for name, sub in (parameters.get("properties") or {}).items():
        t = sub.get("type")
        if t is None and "anyOf" in sub:
            t = [s.get("type", "object") for s in sub["anyOf"] if isinstance(s, dict)]
        out.append({"name": name, "type": t or "object", "required": name in required,
                    "description": sub.get("description", "")})
    return out


def _code_fields(tool: Any) -> dict[str, Any]:
    schema = tool.function_schema()
    values: dict[str, Any] = {
        "description": tool.description,
        "kind": "python",
        "module": getattr(tool, "module", ""),
        "function": getattr(tool, "function", ""),
        "arity": getattr(tool, "arity", 0),
        "parameters": parameter_definitions(schema["parameters"]),
        "return_type": (getattr(tool, "return_type", "") or "str")[:100],
        "schema": schema,
    }
    # Only what the decorator states explicitly overrides operator edits.
    if getattr(tool, "timeout_ms", None):
        values["timeout_ms"] = tool.timeout_ms
    if getattr(tool, "execution", None):
        values["execution"] = tool.execution
    if getattr(tool, "metadata", None):
        values["metadata"] = tool.metadata
    return values


def tool_sync(*, registry: ToolRegistry | None = None) -> SyncReport:
    reg = registry or default_registry
    reg.ensure_discovered()
    report = SyncReport()
    code_tools = [t for t in reg.all() if getattr(t, "kind", "") == "python"]
    rows = {r.name: r for r in Tool.objects.filter(name__in=[t.name for t in code_tools])}
    for tool in code_tools:
        values = _code_fields(tool)
        row = rows.get(tool.name)
        if row is not None and row.kind != "python":
            report.failed[tool.name] = f"a {row.kind} tool with this name already exists"
            continue
        is_new = row is None
        if row is None:
            row = Tool(name=tool.name)
        changed = is_new or any(getattr(row, k) != v for k, v in values.items())
        if not changed:
            report.unchanged.append(tool.name)
            continue
        for k, v in values.items():
            setattr(row, k, v)
        try:
            row.full_clean(validate_unique=is_new)
        except ValidationError as exc:
            report.failed[tool.name] = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            continue
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:  # another process synced the same tool at the same moment
            report.unchanged.append(tool.name)
            continue
        (report.created if is_new else report.updated).append(tool.name)
    known = {t.name for t in code_tools}
    report.orphaned = sorted(
        Tool.objects.filter(kind="python").exclude(name__in=known).values_list("name", flat=True)
    )
    return report


def sync_tools_safely() -> SyncReport | None:
    """For start-up hooks: never let a sync problem (e.g. no migrations yet) stop a process."""
    try:
        report = tool_sync()
    except Exception:
        logger.exception("tool sync failed")
        return None
    if report.failed:
        logger.warning("tools not synced: %s", report.failed)
    logger.info("tool sync: %d created, %d updated", len(report.created), len(report.updated))
    return report


_synced_lock = threading.Lock()
_synced = False


def ensure_tools_synced() -> None:
    """Sync once per process (the first tools API request, start-up hooks)."""
    global _synced
    if _synced:
        return
    with _synced_lock:
        if not _synced:
            _synced = sync_tools_safely() is not None
