from __future__ import annotations

import pytest
from django.core.management import call_command

from agents.models import Agent, AgentVersion, Tool

pytestmark = pytest.mark.django_db


def test_load_demo_creates_an_active_demo_agent_with_openai_providers_and_a_tool() -> None:
    call_command("load_demo")
    agent = Agent.objects.get(agent_id="demo")
    assert agent.state == "active"
    assert {agent.llm_config["provider"], agent.stt_config["provider"], agent.tts_config["provider"]} == {"openai"}
    assert agent.tools == ["get_weather"] and Tool.objects.filter(name="get_weather", enabled=True).exists()


def test_load_demo_twice_updates_in_place_without_a_new_version() -> None:
    call_command("load_demo")
    call_command("load_demo")
    assert Agent.objects.filter(agent_id="demo").count() == 1
    assert AgentVersion.objects.filter(agent__agent_id="demo").count() == 1


def test_load_demo_restores_a_changed_demo_agent_as_a_new_version() -> None:
    call_command("load_demo")
    agent = Agent.objects.get(agent_id="demo")
    Agent.objects.filter(pk=agent.pk).update(instructions="Something else", state="inactive")
    call_command("load_demo")
    agent.refresh_from_db()
    assert agent.state == "active" and agent.version == 2 and "demo" in agent.instructions
