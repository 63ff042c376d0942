"""Running one tool call and recording its result: the same for cascaded and realtime replies."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from runtime.tool_types import ToolCall, ToolInvocation, ToolResult

from . import events as ev
from .interfaces import ToolExecutor


async def run_tool(executor: ToolExecutor | None, call: ToolCall, inv: ToolInvocation) -> ToolResult:
    """The call's result; never raises but for cancellation (failures become error results)."""
    start = time.perf_counter()
    if executor is None:
        return ToolResult(call.call_id, call.name, json.dumps({"error": f"unknown tool {call.name}"}),
                          is_error=True, error_kind="unknown_tool")
    try:
        return await executor.execute(call, inv)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - executors should not raise; be safe anyway
        return ToolResult(call.call_id, call.name, json.dumps({"error": str(exc)}), is_error=True,
                          error_kind="exception", duration_ms=(time.perf_counter() - start) * 1000)


def record_tool_result(r: ToolResult, *, emit: Callable[[ev.Event], None],
                       add_item: Callable[[dict[str, Any]], None]) -> None:
    """ToolError / ToolCompleted, then the tool item in the session's history."""
    if r.is_error:
        emit(ev.ToolError(call_id=r.call_id, name=r.name, error=r.output, error_kind=r.error_kind,
                          duration_ms=round(r.duration_ms, 3)))
    else:
        emit(ev.ToolCompleted(call_id=r.call_id, name=r.name, output=r.output, duration_ms=round(r.duration_ms, 3)))
    add_item({"role": "tool", "tool_call_id": r.call_id, "content": r.output})
