from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from agents.models import Agent, AgentVersion, Tool

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DEMO_PROVIDERS", "DEMO_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)


def providers_of(agent: Agent) -> tuple[str, str, str]:
    return agent.llm_config["provider"], agent.stt_config["provider"], agent.tts_config["provider"]


def test_load_demo_creates_an_active_demo_agent_with_openai_providers_and_a_tool(no_provider_env: None) -> None:
    call_command("load_demo", providers="openai")
    agent = Agent.objects.get(agent_id="demo")
    assert agent.state == "active"
    assert {agent.llm_config["provider"], agent.stt_config["provider"], agent.tts_config["provider"]} == {"openai"}
    assert agent.tools == ["get_weather"] and Tool.objects.filter(name="get_weather", enabled=True).exists()


def test_without_provider_env_the_demo_agent_gets_the_local_providers(no_provider_env: None) -> None:
    call_command("load_demo")
    agent = Agent.objects.get(agent_id="demo")
    assert agent.state == "active" and providers_of(agent) == ("scripted", "pocketsphinx", "espeak")
    assert "get_weather" in str(agent.llm_config["rules"]) and agent.stt_config["grammar"].startswith("#JSGF")
    assert agent.tools == ["get_weather"]


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "OPENAI_BASE_URL"])
def test_with_openai_env_the_demo_agent_gets_the_openai_providers(
        no_provider_env: None, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "http://127.0.0.1:11434/v1" if name == "OPENAI_BASE_URL" else "sk-x")
    call_command("load_demo")
    assert providers_of(Agent.objects.get(agent_id="demo")) == ("openai", "openai", "openai")


def test_providers_chooses_explicitly_over_the_env(no_provider_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    call_command("load_demo", "--providers", "local")
    assert providers_of(Agent.objects.get(agent_id="demo")) == ("scripted", "pocketsphinx", "espeak")
    call_command("load_demo", "--providers", "openai-llm", "--llm-model", "llama3.2")
    agent = Agent.objects.get(agent_id="demo")
    assert providers_of(agent) == ("openai", "pocketsphinx", "espeak") and agent.llm_config["model"] == "llama3.2"
    assert "grammar" not in agent.stt_config  # a real model hears dictation, not the scripted questions


def test_demo_providers_env_sets_the_default_and_a_bad_one_is_named(
        no_provider_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_PROVIDERS", "openai")
    call_command("load_demo")
    assert providers_of(Agent.objects.get(agent_id="demo")) == ("openai", "openai", "openai")
    monkeypatch.setenv("DEMO_PROVIDERS", "watson")
    with pytest.raises(CommandError, match="DEMO_PROVIDERS.*watson"):
        call_command("load_demo")


@pytest.mark.parametrize("providers", ["local", "openai"])
def test_load_demo_twice_updates_in_place_without_a_new_version(no_provider_env: None, providers: str) -> None:
    call_command("load_demo", providers=providers)
    call_command("load_demo", providers=providers)
    assert Agent.objects.filter(agent_id="demo").count() == 1
    assert AgentVersion.objects.filter(agent__agent_id="demo").count() == 1


def test_switching_providers_makes_a_new_version(no_provider_env: None) -> None:
    call_command("load_demo", providers="openai")
    call_command("load_demo", providers="local")
    agent = Agent.objects.get(agent_id="demo")
    assert agent.version == 2 and providers_of(agent)[0] == "scripted"
    first = AgentVersion.objects.get(agent=agent, version=1)
    assert first.config["llm_config"]["provider"] == "openai"


def test_load_demo_restores_a_changed_demo_agent_as_a_new_version(no_provider_env: None) -> None:
    call_command("load_demo")
    agent = Agent.objects.get(agent_id="demo")
    Agent.objects.filter(pk=agent.pk).update(instructions="Something else", state="inactive")
    call_command("load_demo")
    agent.refresh_from_db()
    assert agent.state == "active" and agent.version == 2 and "demo" in agent.instructions
