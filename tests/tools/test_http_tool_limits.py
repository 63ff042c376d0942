"""Issue 12, findings 6 and 10: HTTP tool answers are bounded; URLs keep their query and
never reach a log with it."""
from __future__ import annotations

import logging

import pytest

from runtime.tool_types import ToolCall, ToolInvocation
from agents.tools.executor import ToolExecutor
from agents.tools.http import HttpTool

QUERY_SECRET = "qs-secret-api-key-0123456789"


def tool(url: str, **kwargs) -> HttpTool:
    return HttpTool(name="bounded", description="Bounded.", url=url, allow_private=True, timeout_ms=10_000,
                    parameters={"type": "object", "properties": {"city": {"type": "string"}}}, **kwargs)


async def call(t: HttpTool, arguments: str = '{"city": "Oslo"}'):
    return await ToolExecutor([t]).execute(ToolCall("c1", t.name, arguments),
                                           ToolInvocation(session=None, speech_handle=None))


@pytest.mark.parametrize("unsized", [False, True])
async def test_an_answer_over_the_cap_is_a_clear_tool_error(tool_server, settings, unsized) -> None:
    settings.TOOLS_HTTP_MAX_RESPONSE_BYTES = 100_000
    url = f"{tool_server.url}/big?bytes=5000000" + ("&unsized=1" if unsized else "")
    result = await call(tool(url))
    assert result.error_kind == "tool_error"
    assert "more than 100000 bytes" in result.output and "TOOLS_HTTP_MAX_RESPONSE_BYTES" in result.output


async def test_an_answer_under_the_cap_is_read_whole(tool_server, settings) -> None:
    settings.TOOLS_HTTP_MAX_RESPONSE_BYTES = 100_000
    result = await call(tool(f"{tool_server.url}/big?bytes=90000&unsized=1"))
    assert result.error_kind is None
    assert result.output == "x" * 16_000  # what the model sees is still cut to MAX_OUTPUT_CHARS


async def test_a_get_tool_keeps_the_query_configured_in_its_url(tool_server) -> None:
    result = await call(tool(f"{tool_server.url}/text?units=metric&lang=fr", method="GET"))
    assert result.output == "plain answer"
    [req] = tool_server.recorder.requests
    path = req["path"]
    assert path.startswith("/text?units=metric&lang=fr&")
    assert "call_id=c1" in path and "tool=bounded" in path and "arguments=" in path


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_secret_in_the_url_query_reaches_no_log(tool_server, caplog, method) -> None:
    with caplog.at_level(logging.DEBUG):
        result = await call(tool(f"{tool_server.url}/text?api_key={QUERY_SECRET}", method=method))
    assert result.output == "plain answer"
    [req] = tool_server.recorder.requests
    assert f"api_key={QUERY_SECRET}" in req["path"]  # sent to the service...
    assert QUERY_SECRET not in caplog.text  # ...and logged by nobody
    assert any(r.name == "httpx" and "/text?[redacted]" in r.getMessage() for r in caplog.records)


def test_the_openai_sdks_request_log_loses_its_query_too(caplog) -> None:
    import httpx2  # the OpenAI SDK's HTTP client logs like httpx, on its own logger

    with caplog.at_level(logging.INFO):
        logging.getLogger("httpx2").info('HTTP Request: %s %s "%s %d %s"', "POST",
                                         httpx2.URL(f"http://llm.example/v1/chat?key={QUERY_SECRET}"),
                                         "HTTP/1.1", 200, "OK")
    assert QUERY_SECRET not in caplog.text
    assert "http://llm.example/v1/chat?[redacted]" in caplog.text
