"""Running a tool on the Celery `tools` queue, and the worker side of it."""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from controlplane.celery import app as default_app
from runtime.tool_types import ToolCall

from .bound import BoundTool
from .context import FunctionCall, RunContext
from .errors import ToolArgumentsError, ToolError
from .function_tool import to_output
from .loading import load_tool
from .outcomes import EXCEPTION, INVALID_ARGUMENTS, TIMEOUT, TOOL_ERROR, UNKNOWN_TOOL, Outcome, error_message

logger = logging.getLogger("agents.tools")

TOOLS_QUEUE = "tools"
RUN_TOOL_TASK = "agents.run_tool"


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return {}


def context_payload(ctx: RunContext, timeout_ms: int) -> dict[str, Any]:
    return {
        "call_id": ctx.call_id,
        "execution_id": ctx.execution_id,
        "session_id": ctx.session_id,
        "agent_id": ctx.agent_id,
        "user_data": _jsonable(ctx.user_data),
        "timeout_ms": timeout_ms,
    }


class CeleryToolRunner:
    """Sends a call to the `tools` queue and awaits its result without blocking the loop:
    each readiness check runs in a thread, between them the coroutine sleeps."""

    def __init__(
        self,
        *,
        app: Any = None,
        queue: str = TOOLS_QUEUE,
        first_poll_s: float = 0.001,
        max_poll_s: float = 0.05,
        fast_polls: int = 20,
    ) -> None:
        self.fast_polls = fast_polls
        self.app = app if app is not None else default_app
        self.queue = queue
        self.first_poll_s = first_poll_s
        self.max_poll_s = max_poll_s

    async def run(self, bound: Any, call: ToolCall, ctx: RunContext, timeout_s: float) -> Any:
        payload = context_payload(ctx, bound.timeout_ms)
        result = await asyncio.to_thread(
            self.app.send_task,
            RUN_TOOL_TASK,
            args=(call.name, call.arguments, payload),
            queue=self.queue,
            expires=timeout_s,  # never start a call whose caller has given up
        )

        def poll() -> tuple[bool, Any]:
            if not result.ready():
                return False, None
            value = result.get(timeout=max(timeout_s, 1.0), propagate=False)
            result.forget()
            return True, value

        polls, delay = 0, self.first_poll_s
        try:
            while True:
                done, value = await asyncio.to_thread(poll)
                if done:
                    break
                await asyncio.sleep(delay)
                polls += 1
                if polls >= self.fast_polls:  # most calls are quick: poll fast, then back off
                    delay = min(delay * 1.5, self.max_poll_s)
        except BaseException:
            # Timed out or cancelled: drop the message if it has not started yet.
            try:
                await asyncio.shield(asyncio.to_thread(result.revoke))
            except BaseException:
                logger.debug("could not revoke tool task %s", result.id)
            raise
        if isinstance(value, dict) and "output" in value:
            return Outcome(str(value["output"]), value.get("error_kind"))
        logger.error("tool %s: Celery task failed: %r", call.name, value)
        return Outcome(error_message(EXCEPTION, call.name), EXCEPTION)


def execute_remote_call(name: str, arguments: str, context: dict[str, Any]) -> dict[str, Any]:
    """Worker side of a Celery tool call: resolve, validate, run, map the outcome."""
    bound = load_tool(name)
    if bound is None:
        return {"output": error_message(UNKNOWN_TOOL, name), "error_kind": UNKNOWN_TOOL}
    ctx = RunContext(
        function_call=FunctionCall(context.get("call_id", ""), name, arguments),
        user_data=context.get("user_data") or {},
        session_id=context.get("session_id", ""),
        agent_id=context.get("agent_id", ""),
        execution_id=context.get("execution_id") or uuid.uuid4().hex,
        metadata={"remote": True},
    )
    try:
        kwargs = bound.tool.parse_arguments(arguments)
    except ToolArgumentsError as exc:
        return {"output": error_message(INVALID_ARGUMENTS, name, str(exc)), "error_kind": INVALID_ARGUMENTS}
    try:
        outcome = run_sync_outcome(bound, kwargs, ctx)
    except Exception:  # pragma: no cover - run_sync_outcome maps exceptions itself
        logger.exception("tool %s failed on the worker", name)
        return {"output": error_message(EXCEPTION, name), "error_kind": EXCEPTION}
    return {"output": outcome.output, "error_kind": outcome.error_kind}


def run_sync_outcome(bound: BoundTool, kwargs: dict[str, Any], ctx: RunContext) -> Outcome:
    """Run a tool to completion, with its timeout, from a thread without an event loop
    (the Celery worker side)."""
    name = bound.name

    async def guarded() -> Outcome:
        try:
            async with asyncio.timeout(bound.timeout_ms / 1000.0) as cm:
                return Outcome(to_output(await bound.tool.run(kwargs, ctx)))
        except TimeoutError:
            if not cm.expired():
                raise
            logger.warning("tool %s timed out after %d ms [call_id=%s]", name, bound.timeout_ms, ctx.call_id)
            return Outcome(error_message(TIMEOUT, name, str(bound.timeout_ms)), TIMEOUT)

    try:
        return asyncio.run(guarded())
    except ToolError as exc:
        return Outcome(error_message(TOOL_ERROR, name, exc.message), TOOL_ERROR)
    except Exception:
        logger.exception("tool %s raised [call_id=%s execution_id=%s]", name, ctx.call_id, ctx.execution_id)
        return Outcome(error_message(EXCEPTION, name), EXCEPTION)
