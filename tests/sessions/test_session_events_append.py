"""SessionEvent.seq is gap-free per session, even with concurrent writers."""
from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from agents.models import Agent
from sessions.models import AgentSession, SessionEvent
from sessions.services import session_events_append


def test_seqs_continue_across_batches(db: None, active_agent: Agent) -> None:
    session = AgentSession.objects.create(agent=active_agent, agent_version=1, room_id="r")
    now = timezone.now()
    session_events_append(session_id=session.pk, events=[("session_started", now, {}), ("state_changed", now, {"status": "connected"})])
    session_events_append(session_id=session.pk, events=[("stt_result", now, {"text": "hi", "is_final": True})])
    assert list(SessionEvent.objects.filter(session=session).values_list("seq", "type")) == [
        (1, "session_started"),
        (2, "state_changed"),
        (3, "stt_result"),
    ]


def test_each_session_counts_on_its_own(db: None, active_agent: Agent) -> None:
    a = AgentSession.objects.create(agent=active_agent, agent_version=1, room_id="r")
    b = AgentSession.objects.create(agent=active_agent, agent_version=1, room_id="r")
    now = timezone.now()
    session_events_append(session_id=a.pk, events=[("error", now, {})] * 3)
    session_events_append(session_id=b.pk, events=[("error", now, {})])
    assert list(SessionEvent.objects.filter(session=b).values_list("seq", flat=True)) == [1]


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_leave_no_gap_and_no_duplicate(active_agent: Agent) -> None:
    session = AgentSession.objects.create(agent=active_agent, agent_version=1, room_id="r")
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(10):
                session_events_append(session_id=session.pk, events=[("text_received", timezone.now(), {"text": "x"})] * 2)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    seqs = sorted(SessionEvent.objects.filter(session=session).values_list("seq", flat=True))
    assert seqs == list(range(1, 81))
