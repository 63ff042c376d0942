"""Service functions for tools: create HTTP tools, run a tool once (API/CLI test)."""
from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from django.db import IntegrityError, transaction

from agents.models import Credential, Tool
from agents.tools.errors import ToolDefinitionError
from agents.tools.executor import ToolExecutor
from agents.tools.http import HttpTool
from agents.tools.loading import bind_row
from agents.tools.metrics import flush_stats
from agents.tools.registry import registry
from agents.tools.secrets import header_credentials, seal_headers
from agents.tool_sync import parameter_definitions
from controlplane.errors import Conflict, DomainError, NotFound
from sessions.runtime.interfaces import ToolCall, ToolInvocation, ToolResult


def tool_create_http(
    *,
    name: str,
    description: str,
    url: str,
    method: str = "POST",
    headers: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    timeout_ms: int = 30_000,
    retries: int = 0,
    execution: str = "inline",
    enabled: bool = True,
    metadata: dict[str, Any] | None = None,
) -> Tool:
    """Create an HTTP tool. Secret header values are sealed before anything is stored."""
    if Tool.objects.filter(name=name).exists() or registry.get(name) is not None:
        raise Conflict(f"a tool named '{name}' already exists", field="name")
    parameters = parameters or {"type": "object", "properties": {}}
    try:
        sealed = seal_headers(headers or {})
        unknown = set(header_credentials(sealed)) - set(
            Credential.objects.filter(name__in=header_credentials(sealed)).values_list("name", flat=True))
        if unknown:
            raise ToolDefinitionError(f"headers: no credential named {', '.join(sorted(unknown))} "
                                      "(GET /api/v1/credentials/ lists them)")
        HttpTool(name=name, description=description, url=url, method=method, headers=sealed,
                 parameters=parameters, timeout_ms=timeout_ms, retries=retries)
    except ToolDefinitionError as exc:
        raise DomainError(str(exc)) from None
    row = Tool(
        name=name,
        description=description,
        kind="http",
        arity=len(parameters.get("properties", {})),
        parameters=parameter_definitions(parameters),
        return_type="str",
        timeout_ms=timeout_ms,
        execution=execution,
        schema={"name": name, "description": description, "parameters": parameters},
        http_url=url,
        http_method=method.upper(),
        http_headers=sealed,
        http_retries=retries,
        enabled=enabled,
        metadata=metadata or {},
    )
    row.full_clean()  # ValidationError → 400 naming the field
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        raise Conflict(f"a tool named '{name}' already exists", field="name") from None
    return row


def tool_test(*, tool: Tool, arguments: str | dict[str, Any] | None, session_id: str = "", agent_id: str = "") -> ToolResult:
    """Run one call of `tool` the way a session would, record its metrics, return the result.

    Synchronous: runs its own event loop, so call it from a thread without one (a
    management command, a sync view).
    """
    bound = bind_row(tool, registry.get(tool.name))
    if bound is None:
        reason = "disabled" if not tool.enabled else "not loaded in this process"
        raise Conflict(f"tool '{tool.name}' cannot run: it is {reason}", field="name")
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    call = ToolCall(call_id=f"test-{uuid.uuid4().hex[:12]}", name=tool.name, arguments=raw)
    invocation = ToolInvocation(session=None, speech_handle=None, session_id=session_id, agent_id=agent_id)
    result = asyncio.run(ToolExecutor([bound]).execute(call, invocation))
    flush_stats()
    return result


def tool_get(*, name: str) -> Tool:
    tool = Tool.objects.filter(name=name).first()
    if tool is None:
        raise NotFound(f"tool '{name}' not found")
    return tool
