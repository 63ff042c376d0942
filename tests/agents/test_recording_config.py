"""An agent's recording_config: off by default, validated like the provider configs, versioned."""
from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from agents.models import Agent
from runtime.provider_configs import parse_recording_config

pytestmark = pytest.mark.django_db


def test_recording_is_off_unless_enabled(configured_agent: Agent) -> None:
    assert configured_agent.recording_config == {}
    assert parse_recording_config(configured_agent.recording_config).enabled is False


@pytest.mark.parametrize(("config", "fragment"), [
    ({"enabled": "sometimes"}, "enabled"),
    ({"format": "mp3"}, "format"),
    ({"bitrate": 64}, "bitrate"),
    (["enabled"], "JSON object"),
])
def test_a_bad_recording_config_names_the_key(agent_config: dict[str, Any], config: Any, fragment: str) -> None:
    agent = Agent(agent_id="rec", **{**agent_config, "recording_config": config})
    with pytest.raises(ValidationError) as info:
        agent.full_clean()
    assert fragment in " ".join(info.value.message_dict["recording_config"])


def test_enabling_recording_through_the_api_makes_a_new_version(configured_agent: Agent, api_key_factory: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_factory('admin')[1]}")
    url = f"/api/v1/agents/{configured_agent.agent_id}/"
    bad = client.patch(url, {"recording_config": {"enabled": True, "format": "ogg"}}, format="json")
    assert bad.status_code == 400 and "recording_config" in bad.json()
    response = client.patch(url, {"recording_config": {"enabled": True}}, format="json")
    assert response.status_code == 200 and response.json()["recording_config"] == {"enabled": True}
    agent = Agent.objects.get(pk=configured_agent.pk)
    assert agent.version == configured_agent.version + 1
    assert agent.versions.get(version=agent.version).config["recording_config"] == {"enabled": True}
