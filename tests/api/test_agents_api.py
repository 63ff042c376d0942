"""Agent API: CRUD, lifecycle, versions, and a 400 naming the field for every bad input."""
from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from agents.models import Agent, AgentVersion, Tool

pytestmark = pytest.mark.django_db


def new_agent(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "agent_id": "receptionist",
        "instructions": "Greet callers and route them.",
        "tools": ["lookup_order"],
        "llm_config": {"provider": "openai", "model": "gpt-4o-mini"},
    }
    body.update(overrides)
    return body


@pytest.fixture
def tools(registered_tool: Tool) -> Tool:
    return registered_tool


def test_create_returns_201_with_the_agent_and_its_first_version(api_client: APIClient, tools: Tool) -> None:
    response = api_client.post("/api/v1/agents/", new_agent(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["agent_id"] == "receptionist" and body["state"] == "configured" and body["version"] == 1
    assert body["tools"] == ["lookup_order"]
    assert AgentVersion.objects.filter(agent__agent_id="receptionist").count() == 1


def test_created_without_llm_config_it_stays_created(api_client: APIClient) -> None:
    response = api_client.post("/api/v1/agents/", {"agent_id": "bare", "instructions": "Hi."}, format="json")
    assert response.status_code == 201 and response.json()["state"] == "created"
    assert api_client.post("/api/v1/agents/bare/activate").status_code == 409


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"agent_id": ""}, "agent_id", "blank"),
        ({"agent_id": "x" * 256}, "agent_id", "255"),
        ({"agent_id": "has/slash"}, "agent_id", "letters"),
        ({"agent_id": "nul\x00byte"}, "agent_id", "null"),
        ({"instructions": ""}, "instructions", "blank"),
        ({"instructions": "   "}, "instructions", "required"),
        ({"instructions": "x" * 10_001}, "instructions", "10000"),
        ({"tools": ["no_such_tool"]}, "tools", "no_such_tool"),
        ({"tools": "lookup_order"}, "tools", "list"),
        ({"tools": ["lookup_order", "lookup_order"]}, "tools", "once"),
        ({"llm_config": {"provider": "openai", "temperature": 7}}, "llm_config", "temperature"),
        ({"llm_config": {"provider": "openai", "api_key": "sk-123"}}, "llm_config", "api_key_env"),
        ({"llm_config": "openai"}, "llm_config", "dictionary"),
        ({"vad_config": {"provider": "webrtcvad", "sensitivity": 1.5}}, "vad_config", "sensitivity"),
        ({"metadata": ["a"]}, "metadata", "dictionary"),
        ({"metadata": {"k": "nul\x00"}}, "metadata", "NUL"),
        ({"colour": "blue"}, "colour", "Unknown field"),
    ],
)
def test_invalid_create_gets_400_naming_the_field_and_writes_nothing(
    api_client: APIClient, tools: Tool, overrides: dict[str, Any], field: str, fragment: str
) -> None:
    response = api_client.post("/api/v1/agents/", new_agent(**overrides), format="json")
    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in errors, errors
    assert fragment.lower() in str(errors[field]).lower(), errors
    assert not Agent.objects.exists() and not AgentVersion.objects.exists()


@pytest.mark.parametrize("body", [[], "text", 42, None])
def test_a_body_that_is_not_an_object_gets_400(api_client: APIClient, body: Any) -> None:
    response = api_client.post("/api/v1/agents/", body, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize("raw", ["{not json", '{"agent_id": "a", "instructions": "b", "metadata": {"x": NaN}}'])
def test_malformed_json_gets_400(api_client: APIClient, raw: str) -> None:
    response = api_client.post("/api/v1/agents/", raw, content_type="application/json")
    assert response.status_code == 400 and "JSON" in response.json()["detail"]
    assert not Agent.objects.exists()


def test_a_duplicate_agent_id_is_refused_naming_the_field(api_client: APIClient, active_agent: Agent) -> None:
    response = api_client.post("/api/v1/agents/", new_agent(agent_id=active_agent.agent_id, tools=[]), format="json")
    assert response.status_code in (400, 409) and "agent_id" in str(response.json())


def test_list_hides_destroyed_agents_unless_asked(api_client: APIClient, configured_agent: Agent) -> None:
    api_client.post("/api/v1/agents/", {"agent_id": "gone", "instructions": "Bye."}, format="json")
    assert api_client.delete("/api/v1/agents/gone/").status_code == 200
    listed = api_client.get("/api/v1/agents/").json()
    assert [a["agent_id"] for a in listed["results"]] == ["support"] and listed["count"] == 1
    destroyed = api_client.get("/api/v1/agents/?state=destroyed").json()
    assert [a["agent_id"] for a in destroyed["results"]] == ["gone"]
    assert "state" in api_client.get("/api/v1/agents/?state=sleeping").json()


def test_list_paginates(api_client: APIClient) -> None:
    for i in range(5):
        assert api_client.post("/api/v1/agents/", {"agent_id": f"a{i}", "instructions": "Hi."}, format="json").status_code == 201
    page = api_client.get("/api/v1/agents/?limit=2&offset=2").json()
    assert page["count"] == 5 and [a["agent_id"] for a in page["results"]] == ["a2", "a3"]
    assert "offset=4" in page["next"]


def test_retrieve_by_agent_id_and_404_naming_the_agent(api_client: APIClient, active_agent: Agent) -> None:
    assert api_client.get("/api/v1/agents/support/").json()["state"] == "active"
    response = api_client.get("/api/v1/agents/nobody/")
    assert response.status_code == 404 and "nobody" in response.json()["detail"]
    assert api_client.get("/api/v1/agents/nul%00/").status_code == 404


def test_patch_changes_the_config_and_makes_a_version(api_client: APIClient, active_agent: Agent) -> None:
    response = api_client.patch("/api/v1/agents/support/", {"instructions": "Be brief."}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["instructions"] == "Be brief." and response.json()["version"] == 2
    versions = api_client.get("/api/v1/agents/support/versions/").json()
    assert [v["version"] for v in versions["results"]] == [2, 1]
    assert versions["results"][0]["config"]["instructions"] == "Be brief."
    assert versions["results"][0]["created_by"] == "apikey:admin-key"


def test_patch_without_a_change_makes_no_version(api_client: APIClient, active_agent: Agent) -> None:
    response = api_client.patch("/api/v1/agents/support/", {"instructions": active_agent.instructions}, format="json")
    assert response.status_code == 200 and response.json()["version"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"agent_id": "renamed"}, "agent_id"),
        ({"state": "active"}, "state"),
        ({"instructions": ""}, "instructions"),
        ({"tts_config": {"provider": "nope"}}, "tts_config"),
        ({"tools": ["missing"]}, "tools"),
    ],
)
def test_invalid_patch_gets_400_and_changes_nothing(api_client: APIClient, active_agent: Agent, body: dict[str, Any], field: str) -> None:
    response = api_client.patch("/api/v1/agents/support/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    fresh = Agent.objects.get(pk=active_agent.pk)
    assert fresh.version == 1 and fresh.instructions == active_agent.instructions


def test_deactivate_activate_and_delete(api_client: APIClient, active_agent: Agent) -> None:
    response = api_client.delete("/api/v1/agents/support/")
    assert response.status_code == 409 and "'active' to 'destroyed'" in response.json()["detail"]
    assert api_client.post("/api/v1/agents/support/deactivate").json()["state"] == "inactive"
    assert api_client.post("/api/v1/agents/support/deactivate").status_code == 409
    assert api_client.post("/api/v1/agents/support/activate").json()["state"] == "active"
    api_client.post("/api/v1/agents/support/deactivate")
    response = api_client.delete("/api/v1/agents/support/")
    assert response.status_code == 200 and response.json()["state"] == "destroyed"
    assert Agent.objects.get(pk=active_agent.pk).state == "destroyed"


def test_a_destroyed_agent_cannot_change(api_client: APIClient, configured_agent: Agent) -> None:
    api_client.delete("/api/v1/agents/support/")
    assert api_client.patch("/api/v1/agents/support/", {"instructions": "New"}, format="json").status_code == 409
    assert api_client.post("/api/v1/agents/support/activate").status_code == 409
    assert api_client.delete("/api/v1/agents/support/").status_code == 409


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        ("[" * 100_000, "application/json"),  # json.loads raises RecursionError, not ValueError
        ('{"a":' * 100_000, "application/json"),
        (b"\xff\xfe", "application/json"),
        ('{"agent_id": "a", "instructions": "' + "y" * 3_000_000 + '"}', "application/json"),
        ("agent_id=a", "multipart/form-data"),
    ],
    ids=["deep-array", "deep-object", "not-utf8", "over-upload-limit", "multipart-without-boundary"],
)
def test_hostile_bodies_get_400_not_500(api_client: APIClient, raw: Any, content_type: str) -> None:
    response = api_client.generic("POST", "/api/v1/agents/", raw, content_type=content_type)
    assert response.status_code == 400
    assert not Agent.objects.exists()


def test_json_nested_past_the_limit_is_refused_naming_the_path(api_client: APIClient) -> None:
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    response = api_client.post("/api/v1/agents/", {"agent_id": "deep", "instructions": "x", "metadata": {"a": deep}}, format="json")
    assert response.status_code == 400 and "nested deeper than 32 levels" in response.json()["metadata"][0]


def test_an_unsupported_media_type_gets_415(api_client: APIClient) -> None:
    assert api_client.post("/api/v1/agents/", "{}", content_type="text/plain").status_code == 415
