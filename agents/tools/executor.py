"""Runs the model's tool calls: the runtime's `ToolExecutor` implementation.

Build one per session with `ToolExecutor.for_tools(agent.tools)` (reads the Tool rows:
enabled, execution, timeout, HTTP settings) or `ToolExecutor([tool, ...])` (no DB).
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

from asgiref.sync import sync_to_async
from django.db import connections
from runtime.tool_types import ToolCall, ToolInvocation, ToolResult

from . import metrics
from .bound import BoundTool
from .context import FunctionCall, RunContext
from .errors import ToolArgumentsError, ToolError
from .function_tool import to_output
from .loading import load_tools
from .outcomes import EXCEPTION, INVALID_ARGUMENTS, TIMEOUT, TOOL_ERROR, UNKNOWN_TOOL, Outcome, error_message
from .remote import CeleryToolRunner

logger = logging.getLogger("agents.tools")


class ToolExecutor:
    """Implements `runtime.interfaces.ToolExecutor`."""

    def __init__(
        self,
        tools: Iterable[Any],
        *,
        strict: bool = False,
        celery_runner: Any = None,
        record_metrics: bool = True,
        missing: Sequence[str] = (),
    ) -> None:
        self._tools: dict[str, BoundTool] = {}
        for t in tools:
            bound = BoundTool.of(t)
            self._tools[bound.name] = bound
        self.strict = strict
        self.record_metrics = record_metrics
        self.missing = tuple(missing)  # names asked for that are unknown or disabled
        self._celery_runner = celery_runner
        self._schemas: list[dict[str, Any]] | None = None

    # -- construction from the database -------------------------------------------------

    @classmethod
    def for_tools(cls, names: Sequence[str], *, strict: bool = False, **kwargs: Any) -> "ToolExecutor":
        """The executor for an agent's `tools` list. Synchronous (reads Tool rows): call it
        outside the event loop, or use `afor_tools`."""
        bound, missing = load_tools(names)
        if missing:
            logger.warning("tools not available (unknown or disabled): %s", ", ".join(missing))
        return cls(bound, strict=strict, missing=missing, **kwargs)

    @classmethod
    async def afor_tools(cls, names: Sequence[str], *, strict: bool = False, **kwargs: Any) -> "ToolExecutor":
        def load() -> "ToolExecutor":
            try:
                return cls.for_tools(names, strict=strict, **kwargs)
            finally:
                connections.close_all()  # this thread's only; it may not be used again soon

        return await sync_to_async(load, thread_sensitive=False)()

    # -- the ToolExecutor protocol ---------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> BoundTool | None:
        return self._tools.get(name)

    def schemas(self) -> list[dict[str, Any]]:
        if self._schemas is None:
            self._schemas = [b.tool.openai_schema(strict=self.strict) for b in self._tools.values()]
        return self._schemas

    async def execute(self, call: ToolCall, invocation: ToolInvocation) -> ToolResult:
        t0 = time.perf_counter()
        bound = self._tools.get(call.name)
        if bound is None:
            return self._result(
                call, Outcome(error_message(UNKNOWN_TOOL, call.name, available=list(self._tools)), UNKNOWN_TOOL),
                t0, "inline", record=False,
            )
        started = datetime.now(timezone.utc)
        ctx = RunContext(
            function_call=FunctionCall(call.call_id, call.name, call.arguments),
            started_at=started,
            timeout_at=started + timedelta(milliseconds=bound.timeout_ms),
            session=invocation.session,
            speech_handle=invocation.speech_handle,
            user_data=invocation.user_data,
            session_id=invocation.session_id,
            agent_id=invocation.agent_id,
        )
        try:
            kwargs = bound.tool.parse_arguments(call.arguments)
        except ToolArgumentsError as exc:
            outcome = Outcome(error_message(INVALID_ARGUMENTS, call.name, str(exc)), INVALID_ARGUMENTS)
            return self._result(call, outcome, t0, bound.execution)
        outcome = await self._run(bound, kwargs, ctx, call)
        return self._result(call, outcome, t0, bound.execution)

    async def aclose(self) -> None:
        """Nothing to release today; kept so callers can treat executors uniformly."""

    # -- internals ----------------------------------------------------------------------

    async def _run(self, bound: BoundTool, kwargs: dict[str, Any], ctx: RunContext, call: ToolCall) -> Outcome:
        timeout_s = bound.timeout_ms / 1000.0
        try:
            async with asyncio.timeout(timeout_s) as cm:
                if bound.execution == "celery":
                    return await self._celery().run(bound, call, ctx, timeout_s)
                value = await bound.tool.run(kwargs, ctx)
                return Outcome(to_output(value))
        except TimeoutError:
            if cm.expired():
                logger.warning("tool %s timed out after %d ms [call_id=%s]", call.name, bound.timeout_ms, call.call_id)
                return Outcome(error_message(TIMEOUT, call.name, str(bound.timeout_ms)), TIMEOUT)
            logger.exception("tool %s raised [call_id=%s]", call.name, call.call_id)
            return Outcome(error_message(EXCEPTION, call.name), EXCEPTION)
        except ToolError as exc:
            return Outcome(error_message(TOOL_ERROR, call.name, exc.message), TOOL_ERROR)
        except asyncio.CancelledError:
            raise  # the session interrupted the turn: not the tool's failure
        except Exception:
            logger.exception(
                "tool %s raised [call_id=%s execution_id=%s session_id=%s]",
                call.name, call.call_id, ctx.execution_id, ctx.session_id,
            )
            return Outcome(error_message(EXCEPTION, call.name), EXCEPTION)

    def _celery(self) -> Any:
        if self._celery_runner is None:
            self._celery_runner = CeleryToolRunner()
        return self._celery_runner

    def _result(self, call: ToolCall, outcome: Outcome, t0: float, execution: str, *, record: bool = True) -> ToolResult:
        duration_ms = (time.perf_counter() - t0) * 1000.0
        if record and self.record_metrics:
            metrics.record(call.name, execution=execution, error_kind=outcome.error_kind, duration_ms=duration_ms)
        return ToolResult(
            call_id=call.call_id,
            name=call.name,
            output=outcome.output,
            is_error=outcome.error_kind is not None,
            error_kind=outcome.error_kind,
            duration_ms=duration_ms,
        )


def build_tool_executor(names: Sequence[str], *, strict: bool = False) -> ToolExecutor:
    """Factory for the session runtime and the dispatcher (sync; reads Tool rows)."""
    return ToolExecutor.for_tools(names, strict=strict)
