"""State changes of agents: create, update (versioned), activate, deactivate, destroy."""
from __future__ import annotations

from typing import Any

from django.db import transaction

from agents.models import CONFIG_FIELDS, Agent, AgentState, AgentVersion
from controlplane.errors import Conflict
from controlplane.state_machine import StateMachine

AGENT_MACHINE = StateMachine(
    "agent",
    "state",
    {
        AgentState.CONFIGURED: {AgentState.CREATED},
        AgentState.ACTIVE: {AgentState.CONFIGURED, AgentState.INACTIVE},
        AgentState.INACTIVE: {AgentState.ACTIVE},
        # an active agent must be deactivated first, so no job is dispatched to a vanishing agent
        AgentState.DESTROYED: {AgentState.CREATED, AgentState.CONFIGURED, AgentState.INACTIVE},
    },
)


def _is_configured(agent: Agent) -> bool:
    """An agent leaves `created` once an LLM provider has been chosen for it."""
    return bool(agent.instructions.strip()) and bool(agent.llm_config)


def _record_version(agent: Agent, actor: str) -> AgentVersion:
    agent.version += 1
    Agent.objects.filter(pk=agent.pk).update(version=agent.version)
    return AgentVersion.objects.create(agent=agent, version=agent.version, config=agent.config_snapshot(), created_by=actor)


@transaction.atomic
def agent_create(*, agent_id: str, instructions: str, actor: str = "", **config: Any) -> Agent:
    unknown = set(config) - set(CONFIG_FIELDS)
    if unknown:
        raise TypeError(f"unknown agent fields: {', '.join(sorted(unknown))}")
    agent = Agent(agent_id=agent_id, instructions=instructions, **config)
    agent.full_clean()
    agent.save()
    _record_version(agent, actor)
    if _is_configured(agent):
        AGENT_MACHINE.transition(agent, AgentState.CONFIGURED)
    return agent


@transaction.atomic
def agent_update(*, agent: Agent, actor: str = "", **changes: Any) -> Agent:
    """Apply config changes; each change that alters the config makes a new version."""
    unknown = set(changes) - set(CONFIG_FIELDS)
    if unknown:
        raise TypeError(f"unknown agent fields: {', '.join(sorted(unknown))}")
    locked = Agent.objects.select_for_update().get(pk=agent.pk)
    if locked.state == AgentState.DESTROYED:
        raise Conflict(f"agent '{locked.agent_id}' is destroyed; its configuration can no longer change", field="state")
    before = locked.config_snapshot()
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.full_clean()
    if locked.config_snapshot() != before:
        locked.save()
        _record_version(locked, actor)
    if locked.state == AgentState.CREATED and _is_configured(locked):
        AGENT_MACHINE.transition(locked, AgentState.CONFIGURED)
    agent.__dict__.update({k: v for k, v in locked.__dict__.items() if not k.startswith("_")})
    return agent


def agent_activate(*, agent: Agent) -> Agent:
    return AGENT_MACHINE.transition(agent, AgentState.ACTIVE)


def agent_deactivate(*, agent: Agent) -> Agent:
    return AGENT_MACHINE.transition(agent, AgentState.INACTIVE)


def agent_destroy(*, agent: Agent) -> Agent:
    return AGENT_MACHINE.transition(agent, AgentState.DESTROYED)


def agent_version_config(*, agent: Agent, version: int | None = None) -> tuple[int, dict[str, Any]]:
    """The config a session should run: the given version, or the agent's current one."""
    number = version or agent.version
    row = AgentVersion.objects.filter(agent=agent, version=number).first()
    if row is None:
        return agent.version, agent.config_snapshot()
    return row.version, row.config
