"""PATCH and DELETE /api/v1/tools/{name}/: HTTP tools change and go; code tools only take
their settings, and are never deleted (they are discovered from the code)."""
from __future__ import annotations

from typing import Any

import pytest

from agents import services as agent_services
from agents.models import Tool
from agents.tools.secrets import resolve_headers
from tests.tools.test_api_tools import SECRET, http_tool_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def http_tool(tools_admin_client: Any) -> dict[str, Any]:
    response = tools_admin_client.post("/api/v1/tools/", http_tool_body("https://api.example.com/w"), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_patch_changes_an_http_tool_and_keeps_its_secret(tools_admin_client: Any, http_tool: dict[str, Any]) -> None:
    response = tools_admin_client.patch("/api/v1/tools/weather_http/", {
        "description": "Weather, v2.", "url": "https://api2.example.com/w", "timeout_ms": 1500,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                       "required": ["city"]},
        "headers": {"Authorization": "********", "X-Trace": "t2"},
    }, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["description"] == "Weather, v2." and body["timeout_ms"] == 1500
    assert body["http"]["url"] == "https://api2.example.com/w"
    assert body["http"]["headers"] == {"Authorization": "********", "X-Trace": "t2"}
    assert SECRET not in response.content.decode()
    row = Tool.objects.get(name="weather_http")
    assert row.schema["parameters"]["properties"]["days"] == {"type": "integer"} and row.arity == 2
    assert SECRET not in str(row.http_headers)  # still sealed at rest…
    assert resolve_headers(row.http_headers) == {"Authorization": SECRET, "X-Trace": "t2"}  # …and still the secret


@pytest.mark.parametrize(("body", "field"), [
    ({"timeout_ms": 0}, "timeout_ms"), ({"url": "ftp://x.example/w"}, "url"), ({"description": "x" * 501}, "description"),
    ({"name": "renamed"}, "name"), ({"method": "BREW"}, "method"),
])
def test_a_bad_patch_gets_400_naming_the_field_and_changes_nothing(tools_admin_client: Any, http_tool: dict[str, Any],
                                                                   body: dict[str, Any], field: str) -> None:
    response = tools_admin_client.patch("/api/v1/tools/weather_http/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert Tool.objects.get(name="weather_http").timeout_ms == 3000


def test_a_code_tool_takes_its_settings_but_not_its_code(tools_admin_client: Any, synced_tools: Any) -> None:
    response = tools_admin_client.patch("/api/v1/tools/get_weather/", {"enabled": False, "timeout_ms": 2000}, format="json")
    assert response.status_code == 200 and response.json()["enabled"] is False
    refused = tools_admin_client.patch("/api/v1/tools/get_weather/", {"description": "nope"}, format="json")
    assert refused.status_code == 409 and "code tool" in refused.json()["detail"]
    assert Tool.objects.get(name="get_weather").description != "nope"


def test_delete_removes_an_http_tool_but_never_a_code_tool(tools_admin_client: Any, http_tool: dict[str, Any],
                                                           synced_tools: Any) -> None:
    assert tools_admin_client.delete("/api/v1/tools/weather_http/").status_code == 204
    assert not Tool.objects.filter(name="weather_http").exists()
    assert tools_admin_client.get("/api/v1/tools/weather_http/").status_code == 404
    refused = tools_admin_client.delete("/api/v1/tools/get_weather/")
    assert refused.status_code == 409 and "discovered" in refused.json()["detail"]
    assert Tool.objects.filter(name="get_weather").exists()


def test_a_tool_an_agent_uses_is_not_deleted(tools_admin_client: Any, http_tool: dict[str, Any]) -> None:
    agent_services.agent_create(agent_id="forecaster", instructions="Forecast.", actor="test", tools=["weather_http"],
                                llm_config={"provider": "openai", "model": "gpt-4o-mini"})
    refused = tools_admin_client.delete("/api/v1/tools/weather_http/")
    assert refused.status_code == 409 and "forecaster" in refused.json()["detail"]


def test_changing_tools_needs_the_tools_write_scope(read_only_client: Any, tools_admin_client: Any,
                                                    http_tool: dict[str, Any]) -> None:
    assert read_only_client.patch("/api/v1/tools/weather_http/", {"timeout_ms": 10}, format="json").status_code == 403
    assert read_only_client.delete("/api/v1/tools/weather_http/").status_code == 403
    assert read_only_client.get("/api/v1/tools/weather_http/").status_code == 200
