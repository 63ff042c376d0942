"""Service functions for tools: create, update and delete HTTP tools, run a tool once (API/CLI test)."""
from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from django.db import IntegrityError, transaction

from agents.models import Agent, Credential, Tool
from controlplane.errors import Conflict, DomainError, NotFound
from runtime.tool_types import ToolCall, ToolInvocation, ToolResult

from .errors import ToolDefinitionError
from .executor import ToolExecutor
from .http import HttpTool
from .loading import bind_row
from .metrics import flush_stats
from .registry import registry
from .secrets import header_credentials, seal_headers
from .sync import parameter_definitions


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


# what a code tool lets an operator change (as the admin does): the rest comes from its code
CODE_TOOL_SETTINGS = frozenset({"timeout_ms", "execution", "enabled", "metadata"})
HTTP_TOOL_FIELDS = frozenset({"description", "url", "method", "headers", "parameters", "timeout_ms", "retries",
                              "execution", "enabled", "metadata"})


def tool_update(*, tool: Tool, **changes: Any) -> Tool:
    """Change an HTTP tool, or a code tool's settings; every rule of create applies.

    Raises Conflict for a code tool's code-defined fields, DomainError for an invalid result.
    """
    unknown = set(changes) - HTTP_TOOL_FIELDS
    if unknown:
        raise DomainError(f"unknown tool field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    if tool.kind != "http":
        fixed = sorted(set(changes) - CODE_TOOL_SETTINGS)
        if fixed:
            raise Conflict(f"tool '{tool.name}' is a code tool: its {', '.join(fixed)} come(s) from its code, which "
                           f"is discovered at start-up; only {', '.join(sorted(CODE_TOOL_SETTINGS))} can be changed here",
                           field=fixed[0])
    else:
        parameters = changes.get("parameters", (tool.schema or {}).get("parameters") or {"type": "object", "properties": {}})
        description = changes.get("description", tool.description)
        url, method = changes.get("url", tool.http_url), changes.get("method", tool.http_method)
        try:
            sealed = seal_headers(changes["headers"], previous=tool.http_headers or {}) if "headers" in changes \
                else tool.http_headers
            HttpTool(name=tool.name, description=description, url=url, method=method, headers=sealed,
                     parameters=parameters, timeout_ms=changes.get("timeout_ms", tool.timeout_ms),
                     retries=changes.get("retries", tool.http_retries))
        except ToolDefinitionError as exc:
            raise DomainError(str(exc)) from None
        tool.description, tool.http_url, tool.http_method, tool.http_headers = description, url, method.upper(), sealed
        tool.arity = len(parameters.get("properties", {}))
        tool.parameters = parameter_definitions(parameters)
        tool.schema = {"name": tool.name, "description": description, "parameters": parameters}
        if "retries" in changes:
            tool.http_retries = changes["retries"]
    for name in ("timeout_ms", "execution", "enabled", "metadata"):
        if name in changes:
            setattr(tool, name, changes[name])
    tool.full_clean()  # ValidationError → 400 naming the field
    tool.save()
    return tool


def tool_delete(*, tool: Tool) -> None:
    """Delete an HTTP tool no agent uses. Code tools are discovered again: disable them instead."""
    if tool.kind != "http":
        raise Conflict(f"tool '{tool.name}' is a code tool: it is discovered from the code at start-up and would "
                       "come back; disable it instead (enabled: false)", field="name")
    users = sorted(a.agent_id for a in Agent.objects.live().only("agent_id", "tools") if tool.name in (a.tools or []))
    if users:
        raise Conflict(f"tool '{tool.name}' is used by agent(s) {', '.join(users)}; remove it from them first",
                       field="name")
    tool.delete()


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
