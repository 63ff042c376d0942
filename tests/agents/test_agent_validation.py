"""The data-model seed's Agent rules, enforced by the model layer."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from agents import services
from agents.models import Agent

pytestmark = pytest.mark.django_db


def make(agent_config: dict[str, Any], **overrides: Any) -> Agent:
    config = {**agent_config, **overrides}
    return Agent(agent_id=config.pop("agent_id", "a1"), **config)


def errors_of(agent: Agent) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        agent.full_clean()
    return info.value.message_dict


def test_a_complete_agent_is_valid(agent_config: dict[str, Any]) -> None:
    make(agent_config).full_clean()


def test_it_rejects_an_empty_agent_id(agent_config: dict[str, Any]) -> None:
    assert "agent_id" in errors_of(make(agent_config, agent_id=""))


def test_it_rejects_an_agent_id_over_255_chars(agent_config: dict[str, Any]) -> None:
    assert "agent_id" in errors_of(make(agent_config, agent_id="a" * 256))


def test_it_accepts_an_agent_id_of_255_chars(agent_config: dict[str, Any]) -> None:
    make(agent_config, agent_id="a" * 255).full_clean()


def test_it_rejects_a_duplicate_agent_id(agent_config: dict[str, Any], configured_agent: Agent) -> None:
    assert "agent_id" in errors_of(make(agent_config, agent_id=configured_agent.agent_id))


def test_it_requires_instructions(agent_config: dict[str, Any]) -> None:
    assert "instructions" in errors_of(make(agent_config, instructions="   "))


def test_it_rejects_instructions_over_10000_chars(agent_config: dict[str, Any]) -> None:
    assert "instructions" in errors_of(make(agent_config, instructions="x" * 10_001))


def test_it_accepts_instructions_of_10000_chars(agent_config: dict[str, Any]) -> None:
    make(agent_config, instructions="x" * 10_000).full_clean()


def test_tools_must_reference_registered_tools(agent_config: dict[str, Any]) -> None:
    errors = errors_of(make(agent_config, tools=["lookup_order", "launch_rockets"]))
    assert "launch_rockets" in " ".join(errors["tools"])


def test_tools_must_be_a_list_of_names(agent_config: dict[str, Any]) -> None:
    assert "tools" in errors_of(make(agent_config, tools={"lookup_order": True}))


@pytest.mark.parametrize(
    ("field", "config", "needle"),
    [
        ("llm_config", {"provider": "acme"}, "unknown llm provider"),
        ("llm_config", {"provider": "openai", "temperature": 3}, "temperature"),
        ("llm_config", {"provider": "openai", "base_url": "not a url"}, "base_url"),
        ("llm_config", {"provider": "openai", "api_key": "sk-live"}, "api_key_env"),
        ("stt_config", {"provider": "openai", "language": "English"}, "language"),
        ("tts_config", {"provider": "openai", "speed": 9}, "speed"),
        ("vad_config", {"provider": "webrtcvad", "frame_ms": 25}, "frame_ms"),
        ("vad_config", {"provider": "webrtcvad", "surprise": 1}, "surprise"),
        ("turn_config", {"max_tool_steps": -1}, "max_tool_steps"),
    ],
)
def test_provider_configs_validate_against_their_provider_schema(
    agent_config: dict[str, Any], field: str, config: dict[str, Any], needle: str
) -> None:
    errors = errors_of(make(agent_config, **{field: config}))
    assert needle in " ".join(errors[field])


def test_vad_sensitivity_must_be_between_0_and_1(agent_config: dict[str, Any]) -> None:
    assert "sensitivity" in " ".join(errors_of(make(agent_config, vad_config={"sensitivity": 1.5}))["vad_config"])
    make(agent_config, vad_config={"sensitivity": 0.0}).full_clean()
    make(agent_config, vad_config={"sensitivity": 1.0}).full_clean()


def test_timestamps_must_be_chronological(configured_agent: Agent) -> None:
    configured_agent.updated_at = configured_agent.created_at - timedelta(seconds=1)
    assert "updated_at" in errors_of(configured_agent)


def test_an_invalid_create_writes_nothing(agent_config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        services.agent_create(agent_id="bad", instructions="", **{k: v for k, v in agent_config.items() if k != "instructions"})
    assert not Agent.objects.filter(agent_id="bad").exists()
