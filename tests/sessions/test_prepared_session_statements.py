"""The session statements of every call run as prepared statements
(controlplane.prepared_statements): the close that reads the report with it, the report's read,
the event appends and the event sink's shared INSERT and live-state UPDATE. With PostgreSQL
binding the parameters, their types must still resolve (text arrays, jsonb, timestamps, a NULL
error). The answers are the other test files'; here each runs prepared, once per call, and answers."""
from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from sessions.call_report import call_report, session_end_reading_report
from sessions.event_rows import event_rows_insert, events_append_returning, live_states_write
from sessions.models import AgentSession, SessionEvent, SessionStatus
from tests.prepared_helpers import prepared_runs

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("error", [None, "provider down"])
def test_the_close_reading_the_report_runs_prepared(error: str | None, live_session: AgentSession) -> None:
    events_append_returning(session_id=live_session.pk, events=[
        ("conversation_item_added", timezone.now(), {"role": "user", "content": "hello"})])
    before = prepared_runs("WITH closed AS")

    status, read = session_end_reading_report(session=live_session, error=error, reason="caller hung up")

    assert prepared_runs("WITH closed AS") == before + 1
    assert status == (SessionStatus.ERROR if error else SessionStatus.DISCONNECTED)
    assert read is not None and read[0]["error"] == (error or "")
    assert [line.text for line in read[1]] == ["hello"]


def test_the_report_read_runs_prepared(live_session: AgentSession) -> None:
    before = prepared_runs('SELECT s."status"')

    assert call_report(live_session.pk).status == SessionStatus.ACTIVE

    assert prepared_runs('SELECT s."status"') == before + 1


def test_the_event_writes_run_prepared(live_session: AgentSession) -> None:
    now = timezone.now()
    append, insert, live = "WITH bumped AS", 'INSERT INTO "agent_sessions_sessionevent"', 'UPDATE "agent_sessions_agentsession" AS s'
    before = [prepared_runs(prefix) for prefix in (append, insert, live)]

    rows = events_append_returning(session_id=live_session.pk, events=[("a", now, {"n": 1}), ("b", now, {"n": None})])
    [row] = event_rows_insert([(live_session.pk, 3, "c", now, {"n": [3]})])
    live_states_write({live_session.pk: {"agent_state": "speaking", "metrics": {"turns": 1}}})

    assert [prepared_runs(prefix) for prefix in (append, insert, live)] == [n + 1 for n in before]
    assert [r.seq for r in rows] == [1, 2] and row.seq == 3
    assert list(SessionEvent.objects.filter(session=live_session).order_by("seq").values_list("type", "data")) == [
        ("a", {"n": 1}), ("b", {"n": None}), ("c", {"n": [3]})]
    stored = AgentSession.objects.get(pk=live_session.pk)
    assert (stored.last_seq, stored.agent_state, stored.metrics) == (2, "speaking", {"turns": 1})
