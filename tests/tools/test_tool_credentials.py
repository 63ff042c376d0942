"""Issue 12, finding 1 for HTTP tools: a header names a credential or an allowlisted
environment variable; the value goes only where it may, checked when the request is built."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents.models import Credential, Tool
from runtime.tool_types import ToolCall, ToolInvocation
from agents.tools.executor import ToolExecutor
from agents.tools.loading import load_tool
from agents.tools.services import tool_create_http
from controlplane.errors import DomainError

pytestmark = pytest.mark.django_db

VENDOR_KEY = "vendor-tool-key-0123456789"
SERVER_SECRET_KEY = "django-secret-key-of-the-server-0123456789"


@pytest.fixture(autouse=True)
def loopback_tools(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.TOOLS_ALLOW_PRIVATE_ADDRESSES = True  # the far end is the loopback double
    monkeypatch.setenv("SECRET_KEY", SERVER_SECRET_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-server-default-openai-key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def credential(*hosts: str) -> Credential:
    row = Credential(name="vendor-key", allowed_hosts=list(hosts))
    row.set_value(VENDOR_KEY)
    row.save()
    return row


def http_tool(url: str, headers: dict[str, Any]) -> Tool:
    return tool_create_http(name="vendor_lookup", description="Looks things up at the vendor.", url=url,
                            headers=headers, timeout_ms=5000)


def call_stored_tool(name: str = "vendor_lookup") -> Any:
    bound = load_tool(name)
    assert bound is not None

    async def run() -> Any:
        return await ToolExecutor([bound]).execute(ToolCall("c1", name, "{}"),
                                                    ToolInvocation(session=None, speech_handle=None))

    return asyncio.run(run())


def test_a_credential_header_is_sent_to_an_allowed_host(tool_server) -> None:
    credential("127.0.0.1")
    http_tool(tool_server.url + "/text", {"Authorization": {"credential": "vendor-key"}})
    result = call_stored_tool()
    assert (result.output, result.error_kind) == ("plain answer", None)
    [req] = tool_server.recorder.requests
    assert req["headers"]["Authorization"] == VENDOR_KEY


def test_a_credential_header_for_another_host_is_refused_before_sending(tool_server) -> None:
    credential("api.vendor.example")
    http_tool(tool_server.url + "/text", {"Authorization": {"credential": "vendor-key"}})
    result = call_stored_tool()
    assert result.error_kind == "tool_error"
    assert "credential 'vendor-key' may not be sent to 127.0.0.1" in result.output
    assert VENDOR_KEY not in result.output
    assert tool_server.recorder.requests == []


def test_a_credential_that_does_not_exist_is_a_clear_error(tool_server) -> None:
    with pytest.raises(DomainError, match="no credential named missing-key"):
        http_tool(tool_server.url + "/text", {"X-Key": {"credential": "missing-key"}})
    credential("127.0.0.1")
    http_tool(tool_server.url + "/text", {"X-Key": {"credential": "vendor-key"}})
    Credential.objects.all().delete()  # removed by an operator after the tool was made
    Tool.objects.filter(name="vendor_lookup").update(http_headers={"X-Key": {"credential": "missing-key"}})
    result = call_stored_tool()
    assert result.error_kind == "tool_error" and "'missing-key' does not exist" in result.output
    assert tool_server.recorder.requests == []


def test_a_server_secret_cannot_be_named_in_a_header(tool_server) -> None:
    with pytest.raises(DomainError, match="SECRET_KEY is not on CREDENTIAL_ENV_ALLOWLIST"):
        http_tool(tool_server.url + "/text", {"Authorization": {"env": "SECRET_KEY"}})
    assert not Tool.objects.filter(name="vendor_lookup").exists()


def test_a_stored_header_naming_a_server_secret_is_refused_at_call_time(tool_server) -> None:
    http_tool(tool_server.url + "/text", {"X-Trace": "t"})
    Tool.objects.filter(name="vendor_lookup").update(http_headers={"Authorization": {"env": "SECRET_KEY"}})
    result = call_stored_tool()
    assert result.error_kind == "tool_error" and "SECRET_KEY is not on CREDENTIAL_ENV_ALLOWLIST" in result.output
    assert SERVER_SECRET_KEY not in result.output
    assert tool_server.recorder.requests == []


def test_the_default_openai_key_in_a_header_goes_only_to_openai(tool_server, settings) -> None:
    settings.CREDENTIAL_ENV_ALLOWLIST = ["OPENAI_API_KEY"]
    http_tool(tool_server.url + "/text", {"Authorization": {"env": "OPENAI_API_KEY"}})
    result = call_stored_tool()
    assert "OPENAI_API_KEY may not be sent to 127.0.0.1" in result.output
    assert tool_server.recorder.requests == []


def test_the_api_shows_a_credential_header_by_name(tools_admin_client, tool_server) -> None:
    credential("127.0.0.1")
    body = {"name": "vendor_lookup", "description": "Looks things up.", "url": tool_server.url + "/text",
            "headers": {"Authorization": {"credential": "vendor-key"}}}
    created = tools_admin_client.post("/api/v1/tools/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["http"]["headers"] == {"Authorization": {"credential": "vendor-key"}}
    assert VENDOR_KEY not in created.content.decode()


def test_the_api_names_the_header_of_a_refused_env_reference(tools_admin_client, tool_server) -> None:
    body = {"name": "vendor_lookup", "description": "Looks things up.", "url": tool_server.url + "/text",
            "headers": {"Authorization": {"env": "LIVEKIT_API_SECRET"}}}
    response = tools_admin_client.post("/api/v1/tools/", body, format="json")
    assert response.status_code == 400
    assert "'Authorization'" in response.json()["detail"] and "LIVEKIT_API_SECRET" in response.json()["detail"]
