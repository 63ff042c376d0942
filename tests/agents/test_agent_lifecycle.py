"""Agent.state: created → configured → active ⇄ inactive → destroyed; versions on change."""
from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from agents import services
from agents.models import Agent, AgentState, AgentVersion
from controlplane.errors import Conflict, IllegalTransition

pytestmark = pytest.mark.django_db
S = AgentState


def agent_in(state: str, agent_config: dict[str, Any]) -> Agent:
    config = {k: v for k, v in agent_config.items() if k != "instructions"}
    agent = services.agent_create(agent_id=f"a-{state}", instructions="Be brief.", **config)
    Agent.objects.filter(pk=agent.pk).update(state=state)
    agent.refresh_from_db()
    return agent


def test_an_agent_without_an_llm_choice_starts_created(agent_config: dict[str, Any]) -> None:
    agent = services.agent_create(agent_id="bare", instructions="Be brief.")
    assert agent.state == S.CREATED
    assert agent.version == 1


def test_choosing_an_llm_configures_it(agent_config: dict[str, Any]) -> None:
    agent = services.agent_create(agent_id="bare", instructions="Be brief.")
    services.agent_update(agent=agent, llm_config={"provider": "openai"})
    assert Agent.objects.get(pk=agent.pk).state == S.CONFIGURED


def test_an_agent_created_with_a_full_config_is_configured(configured_agent: Agent) -> None:
    assert configured_agent.state == S.CONFIGURED


LEGAL = [
    (S.CREATED, "destroy", S.DESTROYED),
    (S.CONFIGURED, "activate", S.ACTIVE),
    (S.CONFIGURED, "destroy", S.DESTROYED),
    (S.ACTIVE, "deactivate", S.INACTIVE),
    (S.INACTIVE, "activate", S.ACTIVE),
    (S.INACTIVE, "destroy", S.DESTROYED),
]
ILLEGAL = [
    (S.CREATED, "activate"),
    (S.CREATED, "deactivate"),
    (S.CONFIGURED, "deactivate"),
    (S.ACTIVE, "activate"),
    (S.ACTIVE, "destroy"),
    (S.INACTIVE, "deactivate"),
    (S.DESTROYED, "activate"),
    (S.DESTROYED, "deactivate"),
    (S.DESTROYED, "destroy"),
]
ACTIONS = {"activate": services.agent_activate, "deactivate": services.agent_deactivate, "destroy": services.agent_destroy}


@pytest.mark.parametrize(("start", "action", "end"), LEGAL)
def test_legal_transitions(agent_config: dict[str, Any], start: str, action: str, end: str) -> None:
    agent = agent_in(start, agent_config)
    ACTIONS[action](agent=agent)
    assert Agent.objects.get(pk=agent.pk).state == end


@pytest.mark.parametrize(("start", "action"), ILLEGAL)
def test_illegal_transitions_raise_and_change_nothing(agent_config: dict[str, Any], start: str, action: str) -> None:
    agent = agent_in(start, agent_config)
    with pytest.raises(IllegalTransition):
        ACTIONS[action](agent=agent)
    assert Agent.objects.get(pk=agent.pk).state == start


def test_every_config_change_makes_an_immutable_version(configured_agent: Agent) -> None:
    services.agent_update(agent=configured_agent, instructions="Be very brief.")
    services.agent_update(agent=configured_agent, instructions="Be very brief.")  # no change, no version
    versions = list(AgentVersion.objects.filter(agent=configured_agent).order_by("version"))
    assert [v.version for v in versions] == [1, 2]
    assert versions[1].config["instructions"] == "Be very brief."
    assert versions[0].config["instructions"] == "You help customers with their orders."
    with pytest.raises(Exception):
        versions[0].save()


@pytest.mark.parametrize("state", [S.CREATED, S.CONFIGURED, S.ACTIVE, S.INACTIVE])
def test_config_may_change_in_any_state_but_destroyed(agent_config: dict[str, Any], state: str) -> None:
    agent = agent_in(state, agent_config)
    services.agent_update(agent=agent, instructions="New words.")
    assert Agent.objects.get(pk=agent.pk).instructions == "New words."


def test_a_destroyed_agent_refuses_config_changes(agent_config: dict[str, Any]) -> None:
    agent = agent_in(S.DESTROYED, agent_config)
    with pytest.raises(Conflict):
        services.agent_update(agent=agent, instructions="New words.")
    assert Agent.objects.get(pk=agent.pk).instructions == "Be brief."


def test_an_invalid_update_writes_nothing(configured_agent: Agent) -> None:
    with pytest.raises(ValidationError):
        services.agent_update(agent=configured_agent, instructions="ok", llm_config={"provider": "nope"})
    fresh = Agent.objects.get(pk=configured_agent.pk)
    assert fresh.llm_config == {"provider": "openai", "model": "gpt-4o-mini"}
    assert fresh.version == 1
