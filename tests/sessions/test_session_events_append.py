"""SessionEvent.seq is gap-free per session, even with concurrent writers."""
from __future__ import annotations

import datetime
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


def test_an_append_to_a_session_without_a_row_stores_nothing(db: None, active_agent: Agent) -> None:
    with pytest.raises(AgentSession.DoesNotExist):
        session_events_append(session_id="ses_missing", events=[("error", timezone.now(), {})])
    assert not SessionEvent.objects.filter(session_id="ses_missing").exists()


def test_the_rows_returned_are_the_stored_ones_in_order(db: None, active_agent: Agent) -> None:
    session = AgentSession.objects.create(agent=active_agent, agent_version=1, room_id="r")
    now = timezone.now()
    session_events_append(session_id=session.pk, events=[("error", now, {})])
    rows = session_events_append(session_id=session.pk, events=[("a", now, {"n": 1}), ("b", now, {"n": 2}), ("c", now, {})])
    stored = {row.pk: (row.seq, row.type, row.data) for row in SessionEvent.objects.filter(session=session)}
    assert [(row.seq, row.type, row.data) for row in rows] == [(2, "a", {"n": 1}), (3, "b", {"n": 2}), (4, "c", {})]
    assert all(stored[row.pk] == (row.seq, row.type, row.data) for row in rows)
    assert all(row.session_id == session.pk and not row._state.adding for row in rows)


def test_the_stored_times_and_data_are_the_given_ones(db: None, active_agent: Agent) -> None:
    # the events travel as one JSON text: each instant (its microseconds, any UTC offset) and
    # each payload (nested, non-ASCII, JSON null) must come back as given
    session = AgentSession.objects.create(agent=active_agent, agent_version=1, room_id="r")
    paris = datetime.timezone(datetime.timedelta(hours=1))
    at_utc = datetime.datetime(2026, 12, 4, 10, 0, 0, 123456, tzinfo=datetime.timezone.utc)
    at_paris = datetime.datetime(2026, 12, 4, 11, 0, 0, 654321, tzinfo=paris)
    data = {"text": "Ça va? \"quoted\" \\ 日本", "nested": {"list": [1, 2.5, None, True]}, "none": None}

    session_events_append(session_id=session.pk, events=[("a", at_utc, data), ("b", at_paris, {})])

    stored = list(SessionEvent.objects.filter(session=session).order_by("seq").values_list("type", "at", "data"))
    assert stored == [("a", at_utc, data), ("b", at_paris, {})]
    assert stored[1][1] - stored[0][1] == datetime.timedelta(microseconds=530865)
