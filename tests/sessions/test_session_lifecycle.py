"""AgentSession.status: initializing → connected → active ⇄ paused → disconnected; error from any."""
from __future__ import annotations

import pytest

from agents.models import Agent
from controlplane.errors import IllegalTransition
from sessions import services
from sessions.models import AgentSession, SessionStatus

pytestmark = pytest.mark.django_db
S = SessionStatus

LEGAL = [
    (S.INITIALIZING, S.CONNECTED),
    (S.CONNECTED, S.ACTIVE),
    (S.ACTIVE, S.PAUSED),
    (S.PAUSED, S.ACTIVE),
    (S.CONNECTED, S.DISCONNECTED),
    (S.ACTIVE, S.DISCONNECTED),
    (S.PAUSED, S.DISCONNECTED),
    (S.DISCONNECTED, S.CONNECTED),
    *[(start, S.ERROR) for start in (S.INITIALIZING, S.CONNECTED, S.ACTIVE, S.PAUSED, S.DISCONNECTED)],
]
ILLEGAL = [(start, end) for start in S.values for end in S.values if (start, end) not in LEGAL]


def session_in(status: str, agent: Agent) -> AgentSession:
    return AgentSession.objects.create(agent=agent, agent_version=agent.version, room_id="room-1", status=status)


@pytest.mark.parametrize(("start", "end"), LEGAL)
def test_legal_transitions(active_agent: Agent, start: str, end: str) -> None:
    session = session_in(start, active_agent)
    services.session_transition(session=session, status=end)
    assert AgentSession.objects.get(pk=session.pk).status == end


@pytest.mark.parametrize(("start", "end"), ILLEGAL)
def test_illegal_transitions_raise_and_change_nothing(active_agent: Agent, start: str, end: str) -> None:
    session = session_in(start, active_agent)
    with pytest.raises(IllegalTransition):
        services.session_transition(session=session, status=end)
    assert AgentSession.objects.get(pk=session.pk).status == start


def test_disconnect_stamps_the_end(active_agent: Agent) -> None:
    session = session_in(S.ACTIVE, active_agent)
    services.session_transition(session=session, status=S.DISCONNECTED)
    assert AgentSession.objects.get(pk=session.pk).ended_at is not None


def test_session_fail_keeps_the_reason(active_agent: Agent) -> None:
    session = session_in(S.CONNECTED, active_agent)
    services.session_fail(session=session, error="LLM provider unreachable")
    fresh = AgentSession.objects.get(pk=session.pk)
    assert (fresh.status, fresh.error) == (S.ERROR, "LLM provider unreachable")
