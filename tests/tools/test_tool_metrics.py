from __future__ import annotations

import asyncio

import pytest

from agents.models import Tool
from agents.tools import function_tool
from agents.tools.bound import BoundTool
from runtime.tool_types import ToolCall, ToolInvocation
from agents.tools.executor import ToolExecutor
from agents.tools.metrics import flush_stats, stats_buffer
from server.metrics import render_latest

pytestmark = pytest.mark.django_db


@function_tool(name="metered_tool", register=False)
async def metered(fail: bool = False, slow: bool = False) -> str:
    """A tool whose outcome the test chooses."""
    if slow:
        await asyncio.sleep(1)
    if fail:
        raise RuntimeError("boom")
    return "ok"


def run_calls(*arguments: str) -> None:
    executor = ToolExecutor([BoundTool(metered, "inline", 100)])
    inv = ToolInvocation(session=None, speech_handle=None)

    async def go() -> None:
        for i, args in enumerate(arguments):
            await executor.execute(ToolCall(f"c{i}", "metered_tool", args), inv)

    asyncio.run(go())


@pytest.fixture
def metered_row() -> Tool:
    stats_buffer.take()  # start from nothing buffered
    return Tool.objects.create(name="metered_tool", description="Metered.", module=__name__, function="metered",
                               schema=metered.function_schema())


def test_calls_errors_timeouts_and_latency_reach_the_tool_row(metered_row: Tool) -> None:
    run_calls("{}", "{}", '{"fail": true}', '{"slow": true}', '{"fail": "x"}')
    assert flush_stats() == 1
    metered_row.refresh_from_db()
    assert (metered_row.calls, metered_row.errors, metered_row.timeouts) == (5, 3, 1)
    assert metered_row.total_latency_ms >= 90  # the timed-out call alone waited ~100 ms
    assert flush_stats() == 0  # nothing counted twice


def test_tool_series_are_in_the_prometheus_exposition(metered_row: Tool) -> None:
    run_calls("{}", '{"slow": true}')
    text = render_latest().decode()
    assert 'controlplane_tool_calls_total{outcome="ok",tool="metered_tool"}' in text
    assert 'controlplane_tool_timeouts_total{tool="metered_tool"}' in text
    assert 'controlplane_tool_latency_seconds_count{execution="inline",tool="metered_tool"}' in text
    assert 'controlplane_tool_errors_total{kind="timeout",tool="metered_tool"}' in text
