from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import REGISTRY

import agents.tools.sync
from agents.models import Tool
from agents.tools.metrics import stats_buffer

pytestmark = pytest.mark.django_db

SECRET = "sk-live-api-SECRET-987"


def http_tool_body(url: str, **overrides) -> dict:
    body = {
        "name": "weather_http",
        "description": "Weather over HTTP.",
        "url": url,
        "headers": {"Authorization": {"secret": SECRET}, "X-Env-Key": {"env": "WEATHER_KEY"}, "X-Trace": "t1"},
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "timeout_ms": 3000,
        "retries": 1,
    }
    body.update(overrides)
    return body


def test_listing_needs_authentication(tools_urls, client) -> None:
    assert client.get("/api/v1/tools/").status_code in (401, 403)


def test_it_lists_discovered_tools_with_stats(tools_admin_client, synced_tools) -> None:
    response = tools_admin_client.get("/api/v1/tools/")
    assert response.status_code == 200
    names = [t["name"] for t in response.json()["results"]]
    assert "get_weather" in names
    weather = next(t for t in response.json()["results"] if t["name"] == "get_weather")
    assert weather["kind"] == "python" and weather["http"] is None
    assert weather["schema"]["parameters"]["required"] == ["city"]
    assert weather["stats"] == {"calls": 0, "errors": 0, "timeouts": 0, "total_latency_ms": 0.0,
                                "average_latency_ms": 0.0}


def test_it_gets_one_tool_or_404(tools_admin_client, synced_tools) -> None:
    assert tools_admin_client.get("/api/v1/tools/get_weather/").json()["timeout_ms"] == 5000
    response = tools_admin_client.get("/api/v1/tools/nope/")
    assert response.status_code == 404


def test_creating_an_http_tool_never_shows_its_secrets(tools_admin_client, caplog) -> None:
    with caplog.at_level(logging.DEBUG):
        created = tools_admin_client.post("/api/v1/tools/", http_tool_body("https://api.example.com/w"), format="json")
        listed = tools_admin_client.get("/api/v1/tools/")
        detail = tools_admin_client.get("/api/v1/tools/weather_http/")
    assert created.status_code == 201, created.content
    assert created.json()["http"]["headers"] == {
        "Authorization": "********", "X-Env-Key": {"env": "WEATHER_KEY"}, "X-Trace": "t1",
    }
    for response in (created, listed, detail):
        assert SECRET not in response.content.decode()
    assert SECRET not in caplog.text
    stored = Tool.objects.get(name="weather_http").http_headers
    assert SECRET not in json.dumps(stored)
    assert set(stored["Authorization"]) == {"encrypted"}


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"name": "bad name"}, "name"),
        ({"description": "x" * 501}, "description"),
        ({"timeout_ms": 0}, "timeout_ms"),
        ({"timeout_ms": 300_001}, "timeout_ms"),
        ({"url": "ftp://x"}, "url"),
        ({"headers": {"X": 5}}, None),
        ({"parameters": {"type": "string"}}, None),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_http_tools_get_a_400(tools_admin_client, overrides, field) -> None:
    body = {**http_tool_body("https://api.example.com"), **overrides}
    response = tools_admin_client.post("/api/v1/tools/", body, format="json")
    assert response.status_code == 400, response.content
    if field:
        assert field in response.json()
    assert not Tool.objects.filter(name=overrides.get("name", "weather_http")).exists()


def test_a_name_taken_by_a_code_tool_is_a_conflict(tools_admin_client, synced_tools) -> None:
    response = tools_admin_client.post("/api/v1/tools/", http_tool_body("https://x.example", name="get_weather"), format="json")
    assert response.status_code == 409


def test_creating_needs_the_tools_write_scope(read_only_client) -> None:
    response = read_only_client.post("/api/v1/tools/", http_tool_body("https://x.example"), format="json")
    assert response.status_code == 403
    assert read_only_client.get("/api/v1/tools/").status_code == 200


def test_the_test_endpoint_runs_a_code_tool_and_counts_it(tools_admin_client, synced_tools) -> None:
    stats_buffer.take()  # counts buffered by earlier tests in this process are not this call's
    before = REGISTRY.get_sample_value("controlplane_tool_calls_total", {"tool": "get_weather", "outcome": "ok"}) or 0
    response = tools_admin_client.post("/api/v1/tools/get_weather/test", {"arguments": {"city": "Paris"}}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["output"].startswith("The weather in Paris is")
    assert (body["is_error"], body["error_kind"]) == (False, None)
    assert REGISTRY.get_sample_value("controlplane_tool_calls_total", {"tool": "get_weather", "outcome": "ok"}) == before + 1
    row = Tool.objects.get(name="get_weather")
    assert row.calls == 1 and row.errors == 0 and row.total_latency_ms > 0


def test_the_test_endpoint_reports_bad_arguments(tools_admin_client, synced_tools) -> None:
    response = tools_admin_client.post("/api/v1/tools/get_weather/test", {"arguments": '{"city": '}, format="json")
    assert response.json()["error_kind"] == "invalid_arguments"
    assert Tool.objects.get(name="get_weather").errors == 1


def test_the_test_endpoint_calls_an_http_tool(tools_admin_client, tool_server, settings, monkeypatch) -> None:
    settings.TOOLS_ALLOW_PRIVATE_ADDRESSES = True
    monkeypatch.setenv("WEATHER_KEY", "env-key-value")
    created = tools_admin_client.post("/api/v1/tools/", http_tool_body(tool_server.url + "/json"), format="json")
    assert created.status_code == 201
    response = tools_admin_client.post("/api/v1/tools/weather_http/test", {"arguments": {"city": "Oslo"}}, format="json")
    assert response.json()["output"] == "sunny in Paris"
    [req] = tool_server.recorder.requests
    assert req["headers"]["Authorization"] == SECRET
    assert req["headers"]["X-Env-Key"] == "env-key-value"
    assert req["body"]["arguments"] == {"city": "Oslo"}
    assert SECRET not in response.content.decode()


def test_a_disabled_tool_cannot_be_tested(tools_admin_client, synced_tools) -> None:
    Tool.objects.filter(name="get_weather").update(enabled=False)
    response = tools_admin_client.post("/api/v1/tools/get_weather/test", {"arguments": {"city": "x"}}, format="json")
    assert response.status_code == 409


def test_the_first_tools_request_syncs_the_code_tools(tools_admin_client, monkeypatch) -> None:
    monkeypatch.setattr(agents.tools.sync, "_synced", False)
    assert not Tool.objects.filter(name="get_weather").exists()
    names = [t["name"] for t in tools_admin_client.get("/api/v1/tools/").json()["results"]]
    assert "get_weather" in names
