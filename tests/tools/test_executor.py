from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from prometheus_client import REGISTRY

from agents.tools import RunContext, ToolError, function_tool
from agents.tools.bound import BoundTool
from runtime.tool_types import ToolCall, ToolInvocation
from agents.tools.executor import ToolExecutor
from agents.tools.remote import run_sync_outcome
from runtime.interfaces import ToolExecutor as ToolExecutorProtocol


@function_tool(name="exec_add", register=False)
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@function_tool(name="exec_refuse", register=False)
async def refuse(reason: str) -> str:
    """Always refuses."""
    raise ToolError(f"cannot do that: {reason}")


@function_tool(name="exec_crash", register=False)
def crash() -> str:
    """Always crashes."""
    raise RuntimeError("secret internal detail")


@function_tool(name="exec_slow_async", timeout_ms=50, register=False)
async def slow_async() -> str:
    """Sleeps too long."""
    await asyncio.sleep(5)
    return "late"


@function_tool(name="exec_slow_sync", timeout_ms=50, register=False)
def slow_sync() -> str:
    """Blocks too long."""
    time.sleep(0.3)
    return "late"


@function_tool(name="exec_inner_timeout", register=False)
async def inner_timeout() -> str:
    """Raises TimeoutError itself, well within its own timeout."""
    raise TimeoutError("upstream")


@function_tool(name="exec_whoami", register=False)
async def whoami(ctx: RunContext) -> dict:
    """Reports its context."""
    ctx.record_metric("lookups", 1)
    return {
        "call_id": ctx.call_id,
        "session_id": ctx.session_id,
        "agent_id": ctx.agent_id,
        "user": ctx.user_data.get("user"),
        "session": ctx.session,
        "has_deadline": ctx.timeout_at is not None and 0 < (ctx.remaining_ms or 0) <= 30_000,
    }


@pytest.fixture
def executor() -> ToolExecutor:
    return ToolExecutor([add, refuse, crash, slow_async, slow_sync, inner_timeout, whoami])


@pytest.fixture
def invocation() -> ToolInvocation:
    return ToolInvocation(session="session-handle", speech_handle=None, user_data={"user": "ana"},
                          session_id="s-1", agent_id="agent-1")


async def call(executor: ToolExecutor, invocation: ToolInvocation, name: str, arguments: str = "{}"):
    return await executor.execute(ToolCall(call_id="call-1", name=name, arguments=arguments), invocation)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_it_implements_the_runtime_protocol(executor: ToolExecutor) -> None:
    assert isinstance(executor, ToolExecutorProtocol)
    names = [s["function"]["name"] for s in executor.schemas()]
    assert names[:2] == ["exec_add", "exec_refuse"]
    assert all(s["type"] == "function" for s in executor.schemas())


def test_the_strict_executor_hands_out_strict_schemas() -> None:
    ex = ToolExecutor([add], strict=True)
    assert ex.schemas()[0]["function"]["strict"] is True


async def test_success_returns_the_value_as_a_string(executor, invocation) -> None:
    before = counter("controlplane_tool_calls_total", tool="exec_add", outcome="ok")
    result = await call(executor, invocation, "exec_add", '{"a": 2, "b": "3"}')
    assert (result.output, result.is_error, result.error_kind) == ("5", False, None)
    assert result.call_id == "call-1" and result.name == "exec_add"
    assert result.duration_ms > 0
    assert counter("controlplane_tool_calls_total", tool="exec_add", outcome="ok") == before + 1


async def test_a_tool_error_reaches_the_model_readably(executor, invocation) -> None:
    result = await call(executor, invocation, "exec_refuse", '{"reason": "closed"}')
    assert result.is_error and result.error_kind == "tool_error"
    assert "cannot do that: closed" in result.output


async def test_another_exception_is_generic_and_logged(executor, invocation, caplog) -> None:
    errors_before = counter("controlplane_tool_errors_total", tool="exec_crash", kind="exception")
    with caplog.at_level(logging.ERROR, logger="agents.tools"):
        result = await call(executor, invocation, "exec_crash")
    assert result.error_kind == "exception"
    assert "secret internal detail" not in result.output
    assert "internal error" in result.output
    assert any("secret internal detail" in (r.exc_text or "") for r in caplog.records)
    assert counter("controlplane_tool_errors_total", tool="exec_crash", kind="exception") == errors_before + 1


@pytest.mark.parametrize("name", ["exec_slow_async", "exec_slow_sync"])
async def test_a_slow_tool_times_out(executor, invocation, name: str) -> None:
    before = counter("controlplane_tool_timeouts_total", tool=name)
    result = await call(executor, invocation, name)
    assert result.error_kind == "timeout"
    assert "50 ms" in result.output
    assert counter("controlplane_tool_timeouts_total", tool=name) == before + 1


async def test_a_timeout_error_raised_by_the_tool_is_not_a_timeout(executor, invocation) -> None:
    result = await call(executor, invocation, "exec_inner_timeout")
    assert result.error_kind == "exception"


async def test_malformed_json_gets_a_clear_error(executor, invocation) -> None:
    result = await call(executor, invocation, "exec_add", '{"a": 1, "b": ')
    assert result.error_kind == "invalid_arguments"
    assert "not valid JSON" in result.output and "exec_add" in result.output


async def test_schema_invalid_arguments_are_refused(executor, invocation) -> None:
    result = await call(executor, invocation, "exec_add", '{"a": "one", "b": 2}')
    assert result.error_kind == "invalid_arguments"
    assert "a: Input should be a valid integer" in result.output


async def test_an_unknown_tool_lists_the_available_ones(executor, invocation) -> None:
    result = await call(executor, invocation, "exec_nope")
    assert result.error_kind == "unknown_tool"
    assert "exec_nope" in result.output and "exec_add, exec_refuse" in result.output


async def test_the_run_context_carries_the_invocation(executor, invocation) -> None:
    result = await call(executor, invocation, "exec_whoami")
    assert json.loads(result.output) == {
        "call_id": "call-1", "session_id": "s-1", "agent_id": "agent-1", "user": "ana",
        "session": "session-handle", "has_deadline": True,
    }


async def test_a_bound_timeout_overrides_the_tools_own(invocation) -> None:
    ex = ToolExecutor([BoundTool(slow_sync, "inline", 1000)])
    result = await call(ex, invocation, "exec_slow_sync")
    assert (result.output, result.error_kind) == ("late", None)


async def test_cancelling_the_call_cancels_the_tool(executor, invocation) -> None:
    task = asyncio.ensure_future(call(executor, invocation, "exec_slow_async"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_the_worker_side_runner_maps_every_outcome() -> None:
    def outcome(tool, kwargs=None):
        ctx = RunContext.create(call_id="c", name=tool.name, arguments="{}")
        return run_sync_outcome(BoundTool.of(tool), kwargs or {}, ctx)

    assert outcome(add, {"a": 1, "b": 2}).output == "3"
    assert outcome(refuse, {"reason": "no"}).error_kind == "tool_error"
    assert outcome(crash).error_kind == "exception"
    assert outcome(slow_async).error_kind == "timeout"
    assert outcome(slow_sync).error_kind == "timeout"
    assert outcome(inner_timeout).error_kind == "exception"
