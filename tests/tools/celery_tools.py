"""Tools the Celery integration test runs in a real worker (loaded there via TOOL_MODULES)."""
from __future__ import annotations

import asyncio
import os
import time

from agents.tools import RunContext, ToolError, function_tool


@function_tool(execution="celery")
def celery_add(a: int, b: int) -> int:
    """Add two integers in the worker."""
    return a + b


@function_tool(execution="celery")
async def celery_where(ctx: RunContext) -> dict:
    """Report the process and the context the worker saw."""
    await asyncio.sleep(0)
    return {"pid": os.getpid(), "call_id": ctx.call_id, "session_id": ctx.session_id,
            "user": ctx.user_data.get("user")}


@function_tool(execution="celery")
def celery_refuse(reason: str) -> str:
    """Refuse with a readable error."""
    raise ToolError(f"refused: {reason}")


@function_tool(execution="celery")
def celery_crash() -> str:
    """Crash with an internal error."""
    raise RuntimeError("worker-side detail")


@function_tool(execution="celery", timeout_ms=500)
def celery_sleep(seconds: float) -> str:
    """Sleep in the worker."""
    time.sleep(seconds)
    return "woke"
