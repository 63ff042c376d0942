"""Invalid data through the admin shows field-level errors and writes nothing."""
from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from agents.models import Agent, AgentVersion, Tool
from controlplane.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(operator: Any) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def agent_form(**overrides: Any) -> dict[str, str]:
    form = {
        "agent_id": "helpdesk",
        "instructions": "Help people.",
        "tools": "[]",
        "llm_config": json.dumps({"provider": "openai"}),
        "stt_config": "{}",
        "tts_config": "{}",
        "vad_config": "{}",
        "turn_config": "{}",
        "metadata": "{}",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
    }
    form.update(overrides)
    return form


def test_a_valid_agent_saved_in_the_admin_gets_a_version(admin_client: Client) -> None:
    response = admin_client.post("/admin/agents/agent/add/", agent_form())
    assert response.status_code == 302, response.content.decode()[:2000]
    agent = Agent.objects.get(agent_id="helpdesk")
    assert agent.state == "configured" and AgentVersion.objects.filter(agent=agent).count() == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("llm_config", json.dumps({"provider": "openai", "temperature": 7}), "temperature"),
        ("llm_config", "{not json", "Enter a valid JSON"),
        ("vad_config", json.dumps({"sensitivity": 2}), "sensitivity"),
        ("tools", json.dumps(["no_such_tool"]), "no_such_tool"),
        ("instructions", "x" * 10_001, "10000"),
        ("agent_id", "", "required"),
    ],
)
def test_invalid_agent_data_shows_field_errors_and_writes_nothing(admin_client: Client, field: str, value: str, message: str) -> None:
    response = admin_client.post("/admin/agents/agent/add/", agent_form(**{field: value}))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and message.lower() in " ".join(errors[field]).lower()
    assert not Agent.objects.exists() and not AgentVersion.objects.exists()


def test_invalid_change_to_an_agent_writes_nothing(admin_client: Client, configured_agent: Agent) -> None:
    form = agent_form(llm_config=json.dumps({"provider": "nope"}), instructions="Changed")
    form.pop("agent_id")
    response = admin_client.post(f"/admin/agents/agent/{configured_agent.pk}/change/", form)
    assert response.status_code == 200 and "llm_config" in response.context["adminform"].form.errors
    fresh = Agent.objects.get(pk=configured_agent.pk)
    assert fresh.instructions == "You help customers with their orders." and fresh.version == 1


def test_invalid_tool_data_shows_field_errors(admin_client: Client) -> None:
    form = {
        "name": "bad name",
        "description": "d" * 501,
        "kind": "python",
        "module": "m",
        "function": "f",
        "parameters": "[]",
        "return_type": "str",
        "timeout_ms": "0",
        "execution": "inline",
        "schema": json.dumps({"name": "bad name"}),
        "http_method": "POST",
        "http_headers": "{}",
        "http_retries": "0",
        "enabled": "on",
        "metadata": "{}",
    }
    response = admin_client.post("/admin/agents/tool/add/", form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert {"name", "description", "timeout_ms"} <= set(errors)
    assert not Tool.objects.exists()


def test_a_new_api_key_is_shown_once_and_stored_hashed(admin_client: Client) -> None:
    response = admin_client.post("/admin/controlplane/apikey/add/", {"name": "ops", "scopes": ["read"]}, follow=True)
    shown = [str(m) for m in response.context["messages"] if "New API key" in str(m)]
    assert len(shown) == 1
    raw = shown[0].split(": ", 1)[1].strip()
    assert ApiKey.authenticate(raw) is not None
    assert any(f"cpk_{ApiKey.objects.get().prefix}_" in str(m) and "added successfully" in str(m) for m in response.context["messages"])
    page = admin_client.get(f"/admin/controlplane/apikey/{ApiKey.objects.get().pk}/change/").content.decode()
    assert raw not in page
