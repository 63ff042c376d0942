from __future__ import annotations

import json
import logging

import pytest

from agents.tools import ToolDefinitionError, ToolError
from runtime.tool_types import ToolCall, ToolInvocation
from agents.tools.executor import ToolExecutor
from agents.tools.http import HttpTool
from agents.tools.secrets import REDACTED, encrypt_secret, redact_headers, seal_headers

PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City"}, "days": {"type": "integer"}},
    "required": ["city"],
}
SECRET = "sk-live-VERY-SECRET-123"


def http_tool(url: str, **kwargs) -> HttpTool:
    options = {"name": "weather_http", "description": "Weather over HTTP.", "url": url,
               "parameters": PARAMS, "allow_private": True, "timeout_ms": 5000, **kwargs}
    return HttpTool(**options)


async def run(tool: HttpTool, arguments: str = '{"city": "Paris"}', **inv):
    invocation = ToolInvocation(session=None, speech_handle=None, session_id="sess-1", agent_id="agent-7", **inv)
    return await ToolExecutor([tool]).execute(ToolCall("call-42", tool.name, arguments), invocation)


async def test_the_request_body_carries_call_tool_arguments_and_ids(tool_server) -> None:
    result = await run(http_tool(tool_server.url + "/json"))
    assert (result.output, result.error_kind) == ("sunny in Paris", None)
    [req] = tool_server.recorder.requests
    assert req["method"] == "POST"
    body = req["body"]
    assert {k: body[k] for k in ("call_id", "tool", "arguments", "session_id", "agent_id")} == {
        "call_id": "call-42", "tool": "weather_http", "arguments": {"city": "Paris"},
        "session_id": "sess-1", "agent_id": "agent-7",
    }
    assert body["execution_id"]
    assert req["headers"]["Host"] == tool_server.url.removeprefix("http://")


async def test_get_sends_the_fields_as_query_parameters(tool_server) -> None:
    result = await run(http_tool(tool_server.url + "/text", method="GET"))
    assert result.output == "plain answer"
    path = tool_server.recorder.requests[0]["path"]
    assert "call_id=call-42" in path and "tool=weather_http" in path and "arguments=" in path


async def test_an_error_status_becomes_a_tool_error(tool_server) -> None:
    result = await run(http_tool(tool_server.url + "/bad"))
    assert result.error_kind == "tool_error"
    assert "422" in result.output and "city unknown" in result.output


async def test_server_errors_are_retried(tool_server) -> None:
    tool_server.recorder.fail_first = 2
    result = await run(http_tool(tool_server.url + "/json", retries=2))
    assert result.output == "sunny in Paris"
    assert len(tool_server.recorder.requests) == 3


async def test_retries_run_out(tool_server) -> None:
    tool_server.recorder.fail_first = 5
    result = await run(http_tool(tool_server.url + "/json", retries=1))
    assert result.error_kind == "tool_error" and "503" in result.output
    assert len(tool_server.recorder.requests) == 2


async def test_redirects_are_not_followed(tool_server) -> None:
    result = await run(http_tool(tool_server.url + "/redirect"))
    assert result.error_kind == "tool_error" and "redirect" in result.output
    assert len(tool_server.recorder.requests) == 1


async def test_arguments_are_validated_against_the_schema(tool_server) -> None:
    result = await run(http_tool(tool_server.url + "/json"), '{"days": "two"}')
    assert result.error_kind == "invalid_arguments"
    assert "'city' is a required property" in result.output
    assert tool_server.recorder.requests == []


async def test_secret_headers_are_sent_but_never_logged_or_shown(tool_server, monkeypatch, caplog, settings) -> None:
    monkeypatch.setenv("WEATHER_TOKEN", SECRET)
    headers = seal_headers({
        "Authorization": {"env": "WEATHER_TOKEN"},
        "X-Api-Key": {"secret": SECRET + "-2"},
        "X-Plain-Token": SECRET + "-3",  # sensitive name: encrypted even if given plainly
        "X-Trace": "visible",
    })
    assert SECRET not in json.dumps(headers)
    assert headers["X-Trace"] == "visible"
    with caplog.at_level(logging.DEBUG):
        ok = await run(http_tool(tool_server.url + "/json", headers=headers))
        failed = await run(http_tool(tool_server.url + "/bad", headers=headers))
        refused = await run(http_tool(tool_server.url + "/json", headers=headers, allow_private=False))
    sent = [r["headers"] for r in tool_server.recorder.requests]
    assert sent[0]["Authorization"] == SECRET
    assert sent[0]["X-Api-Key"] == SECRET + "-2"
    assert sent[0]["X-Plain-Token"] == SECRET + "-3"
    assert ok.error_kind is None and failed.error_kind == "tool_error" and refused.error_kind == "tool_error"
    everything = caplog.text + ok.output + failed.output + refused.output
    assert SECRET not in everything
    shown = redact_headers(headers)
    assert shown == {"Authorization": {"env": "WEATHER_TOKEN"}, "X-Api-Key": REDACTED,
                     "X-Plain-Token": REDACTED, "X-Trace": "visible"}
    assert SECRET not in repr(http_tool(tool_server.url, headers=headers))


async def test_a_missing_env_secret_is_a_readable_error(tool_server, monkeypatch) -> None:
    monkeypatch.delenv("NOT_SET_TOKEN", raising=False)
    result = await run(http_tool(tool_server.url + "/json", headers={"Authorization": {"env": "NOT_SET_TOKEN"}}))
    assert result.error_kind == "tool_error" and "not configured" in result.output
    assert tool_server.recorder.requests == []


def test_a_redacted_value_keeps_the_stored_secret() -> None:
    stored = seal_headers({"Authorization": {"secret": SECRET}})
    again = seal_headers({"Authorization": REDACTED}, previous=stored)
    assert again == stored


@pytest.mark.parametrize("bad", [{"X": 1}, {"X": {"env": "1bad"}}, {"bad header": "v"}, {"X": "a\nb"}])
def test_seal_rejects_bad_headers(bad) -> None:
    with pytest.raises(ToolDefinitionError):
        seal_headers(bad)


def test_ciphertext_from_another_key_is_refused(settings) -> None:
    token = encrypt_secret("x")
    settings.FIELD_ENCRYPTION_KEY = "another key"
    with pytest.raises(ToolError):
        seal_headers({"X-Api-Key": {"encrypted": token}})
    assert ToolDefinitionError  # both are the tool package's errors
