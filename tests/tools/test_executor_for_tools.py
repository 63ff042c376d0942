from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from agents.models import Tool
from runtime.tool_types import ToolCall, ToolInvocation
from agents.tools.executor import ToolExecutor, build_tool_executor
from agents.tools.http import HttpTool
from agents.tools.sync import tool_sync

pytestmark = pytest.mark.django_db


def http_row(name: str, url: str, **kw) -> Tool:
    return Tool.objects.create(
        name=name, description="An HTTP tool.", kind="http", http_url=url, timeout_ms=1234,
        schema={"name": name, "description": "An HTTP tool.", "parameters": {"type": "object", "properties": {}}},
        **kw,
    )


def test_it_builds_from_an_agents_tool_names(synced_tools) -> None:
    http_row("ext_lookup", "https://api.example.com/x", execution="celery")
    executor = ToolExecutor.for_tools(["get_weather", "ext_lookup", "missing_tool"])
    assert executor.names == ["get_weather", "ext_lookup"]
    assert executor.missing == ("missing_tool",)
    ext = executor.get("ext_lookup")
    assert isinstance(ext.tool, HttpTool) and (ext.execution, ext.timeout_ms) == ("celery", 1234)
    assert [s["function"]["name"] for s in executor.schemas()] == ["get_weather", "ext_lookup"]


def test_row_settings_decide_execution_and_timeout(synced_tools) -> None:
    Tool.objects.filter(name="get_weather").update(execution="celery", timeout_ms=777)
    bound = build_tool_executor(["get_weather"]).get("get_weather")
    assert (bound.execution, bound.timeout_ms) == ("celery", 777)


def test_disabled_tools_are_left_out(synced_tools) -> None:
    Tool.objects.filter(name="get_weather").update(enabled=False)
    executor = ToolExecutor.for_tools(["get_weather"])
    assert executor.names == [] and executor.missing == ("get_weather",)


@pytest.mark.django_db(transaction=True)
async def test_the_async_factory_reads_rows_and_runs_a_call(synced_tools) -> None:
    await Tool.objects.filter(name="get_weather").aupdate(timeout_ms=4321)
    await sync_to_async(connections.close_all)()  # the thread aupdate used
    executor = await ToolExecutor.afor_tools(["get_weather"])
    assert executor.get("get_weather").timeout_ms == 4321
    result = await executor.execute(ToolCall("c1", "get_weather", '{"city": "Rome"}'),
                                    ToolInvocation(session=None, speech_handle=None))
    assert result.output.startswith("The weather in Rome is") and not result.is_error
