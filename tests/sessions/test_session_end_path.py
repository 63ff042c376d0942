"""The session's end on the hosting path without re-reading its row: the close in one
conditional UPDATE from the row as opened, the runtime's plain moves without a read, the
end-of-call report in one read, and agent metrics whose concurrent ends share a recompute
yet end up equal to a recompute from scratch."""
from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Agent
from controlplane import fleet_events
from sessions import agent_metrics, services
from sessions.agent_metrics import agent_metrics_refresh, agent_metrics_request, agent_metrics_settle
from sessions.call_report import call_report
from sessions.hosting import (
    session_close,
    session_close_reporting,
    session_failure,
    session_mirror_status,
    session_open,
)
from sessions.models import AgentSession, Recording, SessionStatus
from sessions.services import session_end, session_events_append
from workers.models import Job

S = SessionStatus


@pytest.fixture
def fleet_sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(fleet_events, "publish_fleet_event", lambda kind, data: sent.append((kind, data)))
    return sent


def opened(agent: Agent, status: str = S.INITIALIZING, **fields: Any) -> AgentSession:
    """A session row as `session_open` returns it (status as created), then moved to `status`
    behind its back, as the entry point's mirror does."""
    job = Job.objects.create(agent=agent, room_name="r", status="running")
    session = AgentSession.objects.create(job=job, agent=agent, agent_version=agent.version, room_id="r")
    AgentSession.objects.filter(pk=session.pk).update(status=status, **fields)
    return session


def stored(session: AgentSession) -> AgentSession:
    return AgentSession.objects.get(pk=session.pk)


def figures(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in metrics.items() if key != "updated_at"}


# --- the open ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_opening_a_session_is_one_insert_of_the_row_as_the_orm_would_store_it(
        active_agent: Agent, fleet_sent: list[tuple[str, dict[str, Any]]]) -> None:
    job = Job.objects.create(agent=active_agent, room_name="room-9", status="running", transport="local", attempts=1)
    before = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        session = session_open(job=job, agent_version=active_agent.version)
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT"]
    row = stored(session)
    assert (row.job_id, row.agent_id, row.agent_version, row.room_id, row.transport, row.status, row.last_seq) == (
        job.pk, active_agent.pk, active_agent.version, "room-9", "local", S.INITIALIZING, 0)
    assert row.user_data == {"job_id": job.pk, "attempt": 1} and row.metrics == {} and row.conversation_state == {}
    assert before <= row.started_at <= timezone.now() and row.started_at == session.started_at
    assert row.ended_at is None and row.error == "" and row.agent_state == "initializing"
    assert fleet_sent == [("session", {"session_id": session.pk, "status": S.INITIALIZING, "job_id": job.pk})]


# --- the close --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_closing_an_active_session_it_opened_is_one_update_and_announces_its_job(
        active_agent: Agent, fleet_sent: list[tuple[str, dict[str, Any]]]) -> None:
    session = opened(active_agent, S.ACTIVE)
    with CaptureQueriesContext(connection) as queries:
        closed_as = session_close(session.session_id, error=None, reason="completed", session=session)
    # the agent's metrics recompute (an aggregate and the latest turns) reads the table too
    session_sql = [q["sql"] for q in queries.captured_queries if "agent_sessions_agentsession" in q["sql"]
                   and "COUNT(" not in q["sql"] and "agent_sessions_sessionevent" not in q["sql"]]
    assert closed_as == S.DISCONNECTED
    assert len(session_sql) == 1 and session_sql[0].startswith("UPDATE")
    row = stored(session)
    assert (row.status, row.end_reason, row.ended_at is not None) == (S.DISCONNECTED, "completed", True)
    assert ("session", {"session_id": session.session_id, "status": S.DISCONNECTED,
                        "job_id": session.job_id, "reason": "completed"}) in fleet_sent
    assert session_failure(session.session_id, reason="completed", closed_as=closed_as) is None


@pytest.mark.django_db(transaction=True)
def test_a_session_that_never_connected_is_connected_then_closed(active_agent: Agent) -> None:
    session = opened(active_agent, S.INITIALIZING)
    assert session_close(session.session_id, error=None, reason="completed", session=session) == S.DISCONNECTED
    assert (stored(session).status, stored(session).end_reason) == (S.DISCONNECTED, "completed")


@pytest.mark.django_db(transaction=True)
def test_an_error_closes_a_live_or_reconnecting_session_as_error(active_agent: Agent) -> None:
    live, reconnecting = opened(active_agent, S.CONNECTED), opened(active_agent, S.DISCONNECTED)
    for session in (live, reconnecting):
        assert session_close(session.session_id, error="boom", reason="error", session=session) == S.ERROR
        assert (stored(session).status, stored(session).error) == (S.ERROR, "boom")
        assert stored(session).ended_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_row_already_closed_is_left_as_it_is_and_its_own_outcome_is_read(
        active_agent: Agent, fleet_sent: list[tuple[str, dict[str, Any]]]) -> None:
    ended_at = stored(opened(active_agent)).started_at + timedelta(seconds=5)
    failed = opened(active_agent, S.ERROR, error="runtime error: tts", ended_at=ended_at)
    ended = opened(active_agent, S.DISCONNECTED, end_reason="caller_left", ended_at=ended_at)
    fleet_sent.clear()
    for session in (failed, ended):
        assert session_close(session.session_id, error=None, reason="completed", session=session) is None
    assert session_close(ended.session_id, error="late", reason="error", session=ended) is None
    assert (stored(failed).error, stored(ended).end_reason, stored(ended).status) == (
        "runtime error: tts", "caller_left", S.DISCONNECTED)
    assert fleet_sent == []
    assert session_failure(failed.session_id, reason="completed") == "session error: runtime error: tts"
    assert session_failure(ended.session_id, reason="completed") is None


def test_a_row_the_mirror_already_failed_takes_the_jobs_reason_as_its_error(active_agent: Agent) -> None:
    # the status mirror writes the runtime's error state without its cause; the exception that
    # ended the session is the job's failure reason, and the row says it too (still `error`)
    ended_at = stored(opened(active_agent)).started_at + timedelta(seconds=5)
    failed = opened(active_agent, S.ERROR, error="runtime error", ended_at=ended_at)
    assert session_close(failed.session_id, error="LiveKit authentication failed", reason="error", session=failed) is None
    assert (stored(failed).status, stored(failed).error, stored(failed).ended_at) == (
        S.ERROR, "LiveKit authentication failed", ended_at)


@pytest.mark.django_db(transaction=True)
def test_the_close_retried_after_a_lost_commit_changes_nothing(active_agent: Agent) -> None:
    session = opened(active_agent, S.ACTIVE)
    assert session_close(session.session_id, error=None, reason="completed", session=session) == S.DISCONNECTED
    first = stored(session)
    assert session_close(session.session_id, error=None, reason="completed", session=session) is None
    assert (stored(session).ended_at, stored(session).status) == (first.ended_at, S.DISCONNECTED)


# --- the runtime's moves ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_plain_move_with_the_job_is_one_update_and_a_repeat_or_illegal_move_does_nothing(
        active_agent: Agent, fleet_sent: list[tuple[str, dict[str, Any]]]) -> None:
    session = opened(active_agent, S.INITIALIZING)
    with CaptureQueriesContext(connection) as queries:
        session_mirror_status(session.session_id, S.CONNECTED, job_id=session.job_id)
    assert len(queries.captured_queries) == 1 and queries.captured_queries[0]["sql"].startswith("UPDATE")
    assert stored(session).status == S.CONNECTED
    assert fleet_sent == [("session", {"session_id": session.session_id, "status": S.CONNECTED,
                                       "job_id": session.job_id})]
    session_mirror_status(session.session_id, S.CONNECTED, job_id=session.job_id)  # already there
    session_mirror_status(session.session_id, S.PAUSED, job_id=session.job_id)  # paused only from active
    assert stored(session).status == S.CONNECTED and len(fleet_sent) == 1
    session_mirror_status(session.session_id, S.ACTIVE, job_id=session.job_id)
    session_close(session.session_id, error=None, reason="completed", session=session)
    session_mirror_status(session.session_id, S.ACTIVE, job_id=session.job_id)  # ended: no way back
    assert stored(session).status == S.DISCONNECTED


@pytest.mark.django_db(transaction=True)
def test_an_error_reported_by_the_runtime_still_fails_the_session(active_agent: Agent) -> None:
    session = opened(active_agent, S.ACTIVE)
    session_mirror_status(session.session_id, S.ERROR, "llm: quota", job_id=session.job_id)
    assert (stored(session).status, stored(session).error) == (S.ERROR, "llm: quota")


# --- the report -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_report_reads_the_row_its_agent_recording_and_transcript_in_one_statement(active_agent: Agent) -> None:
    session = opened(active_agent, S.ACTIVE, metrics={"responses": 2})
    session_close(session.session_id, error=None, reason="completed", session=session)
    with CaptureQueriesContext(connection) as queries:
        report = call_report(session.session_id)
    assert len(queries.captured_queries) == 1  # the row, its agent's id, the recording's existence, the transcript
    assert (report.agent_id, report.status, report.reason, report.metrics) == (
        active_agent.agent_id, S.DISCONNECTED, "completed", {"responses": 2})
    assert report.recording_url is None
    Recording.objects.create(session_id=session.session_id, file="x.wav", sample_rate=16000)
    assert call_report(session.session_id).recording_url.endswith(f"/sessions/{session.session_id}/recording")



@pytest.mark.django_db(transaction=True)
def test_the_reports_transcript_is_the_heard_turns_in_seq_order(active_agent: Agent) -> None:
    session = opened(active_agent, S.ACTIVE)
    t0 = timezone.now()
    items = [
        ("conversation_item_added", {"role": "user", "content": "hello"}),
        ("stt_result", {"text": "not a turn"}),
        ("conversation_item_added", {"role": "system", "content": "not heard"}),
        ("conversation_item_added", {"role": "assistant", "content": "hi there", "interrupted": True}),
        ("conversation_item_added", {"role": "user", "content": "   "}),
        ("conversation_item_added", {"role": "user", "content": "bye"}),
    ]
    session_events_append(session_id=session.session_id,
                          events=[(type_, t0 + timedelta(seconds=i), data) for i, (type_, data) in enumerate(items)])
    session_close(session.session_id, error=None, reason="completed", session=session)
    lines = call_report(session.session_id).transcript
    assert [(line.role, line.text, line.interrupted) for line in lines] == [
        ("user", "hello", False), ("assistant", "hi there", True), ("user", "bye", False)]
    assert [line.at for line in lines] == [t0, t0 + timedelta(seconds=3), t0 + timedelta(seconds=5)]
    other = opened(active_agent, S.ACTIVE)  # no conversation at all
    assert call_report(other.session_id).transcript == []
    with pytest.raises(AgentSession.DoesNotExist):
        call_report("no-such-session")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("error", [None, "RuntimeError: boom"])
def test_the_usual_close_reads_the_report_in_the_same_statement_and_it_equals_a_later_read(
        active_agent: Agent, fleet_sent: list[tuple[str, dict[str, Any]]], error: str | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    requested: list[int] = []  # the agent's metrics recompute, asked for once the end is committed
    monkeypatch.setattr(services, "agent_metrics_request", lambda agent_pk: requested.append(agent_pk))
    session = opened(active_agent, S.ACTIVE, metrics={"responses": 1})
    session_events_append(session_id=session.session_id, events=[
        ("conversation_item_added", timezone.now(), {"role": "user", "content": "hello"}),
        ("conversation_item_added", timezone.now(), {"role": "assistant", "content": "hi"})])
    Recording.objects.create(session_id=session.session_id, file="x.wav", sample_rate=16000)
    with CaptureQueriesContext(connection) as queries:
        closed_as, read = session_close_reporting(session.session_id, error=error, reason="completed", session=session)
    assert len(queries.captured_queries) == 1 and read is not None and requested == [active_agent.pk]
    assert closed_as == (S.ERROR if error else S.DISCONNECTED) and stored(session).status == closed_as
    assert fleet_sent == [("session", {"session_id": session.pk, "status": closed_as, "job_id": session.job_id,
                                       "reason": error or "completed"})]
    with_close, later = call_report(session.session_id, read), call_report(session.session_id)
    assert with_close.model_dump(exclude={"at"}) == later.model_dump(exclude={"at"})
    assert (with_close.status, with_close.reason, with_close.error, with_close.metrics) == (
        closed_as, "" if error else "completed", error or "", {"responses": 1})
    assert [line.text for line in with_close.transcript] == ["hello", "hi"] and with_close.recording_url
    assert with_close.ended_at == stored(session).ended_at


@pytest.mark.django_db(transaction=True)
def test_a_close_that_must_read_the_row_first_leaves_the_report_to_read_it(active_agent: Agent) -> None:
    session = opened(active_agent, S.INITIALIZING)  # the entry point never reported a connection
    closed_as, read = session_close_reporting(session.session_id, error=None, reason="completed", session=session)
    assert (closed_as, read) == (S.DISCONNECTED, None) and stored(session).status == S.DISCONNECTED
    ended = opened(active_agent, S.DISCONNECTED, ended_at=timezone.now(), end_reason="earlier")
    assert session_close_reporting(ended.session_id, error=None, reason="completed", session=ended) == (None, None)
    assert stored(ended).end_reason == "earlier"

# --- agent metrics ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_metrics_after_many_concurrent_ends_equal_a_recompute_from_scratch(active_agent: Agent) -> None:
    sessions = [opened(active_agent, S.ACTIVE) for _ in range(16)] + [opened(active_agent, S.CONNECTED)]
    ending, staying = sessions[:16], sessions[16]
    barrier = threading.Barrier(len(ending))

    def end(i: int, session: AgentSession) -> None:
        try:
            barrier.wait()
            session_end(session=session, error="boom" if i % 4 == 0 else None, reason="completed")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=end, args=(i, s)) for i, s in enumerate(ending)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert agent_metrics_settle()  # the trailing recompute that counts the later ends
    metrics = Agent.objects.get(pk=active_agent.pk).metrics
    assert (metrics["calls"], metrics["errors"], metrics["error_rate"], metrics["live_sessions"]) == (16, 4, 0.25, 1)
    assert figures(metrics) == figures(agent_metrics_refresh(agent_pk=active_agent.pk))
    assert stored(staying).status == S.CONNECTED


@pytest.mark.django_db(transaction=True)
def test_an_end_during_a_recompute_makes_it_go_round_again_once_the_window_passed(active_agent: Agent,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = opened(active_agent, S.ACTIVE), opened(active_agent, S.ACTIVE)
    started, release, calls = threading.Event(), threading.Event(), []
    recompute = agent_metrics.agent_metrics_refresh

    def slow_refresh(*, agent_pk: int) -> dict[str, Any]:
        calls.append(agent_pk)
        if len(calls) == 1:
            started.set()
            release.wait(10)
        return recompute(agent_pk=agent_pk)

    monkeypatch.setattr(agent_metrics, "agent_metrics_refresh", slow_refresh)
    AgentSession.objects.filter(pk=first.pk).update(status=S.DISCONNECTED, ended_at=first.started_at)
    did = []
    runner = threading.Thread(target=lambda: (did.append(agent_metrics_request(agent_pk=active_agent.pk)),
                                              connections.close_all()))
    runner.start()
    assert started.wait(10)
    # the second session ends while the first recompute runs: it only marks the agent stale
    AgentSession.objects.filter(pk=second.pk).update(status=S.ERROR, ended_at=second.started_at)
    assert agent_metrics_request(agent_pk=active_agent.pk) is False
    release.set()
    runner.join(10)
    assert did == [True]
    assert agent_metrics_settle() and len(calls) == 2
    metrics = Agent.objects.get(pk=active_agent.pk).metrics
    assert (metrics["calls"], metrics["errors"], metrics["live_sessions"]) == (2, 1, 0)


@pytest.mark.django_db(transaction=True)
def test_a_failing_recompute_neither_raises_nor_blocks_the_next(active_agent: Agent,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*, agent_pk: int) -> dict[str, Any]:
        raise RuntimeError("database went away")

    monkeypatch.setattr(agent_metrics, "agent_metrics_refresh", broken)
    assert agent_metrics_request(agent_pk=active_agent.pk) is True
    monkeypatch.undo()
    session = opened(active_agent, S.ACTIVE)
    session_end(session=session, error=None, reason="completed")
    assert agent_metrics_settle()
    assert Agent.objects.get(pk=active_agent.pk).metrics["calls"] == 1


def test_a_costly_recompute_widens_the_window_before_the_next(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """A recompute reads every session of the agent (0.4 s at a million): the next one waits
    its cost over AGENT_METRICS_MAX_SHARE, so a busy agent's history keeps PostgreSQL busy a
    bounded share of the time; a cheap one keeps the configured window."""
    settings.AGENT_METRICS_MIN_INTERVAL_SECONDS, settings.AGENT_METRICS_MAX_SHARE = 1.0, 0.02
    cost = {"seconds": 0.2}
    monkeypatch.setattr(agent_metrics, "agent_metrics_refresh", lambda *, agent_pk: time.sleep(cost["seconds"]))
    cheap, costly = 10**9 + 1, 10**9 + 2  # agents of this test only: no rows are read
    try:
        windows = {}
        for agent_pk, seconds in ((cheap, 0.0), (costly, 0.2)):
            cost["seconds"] = seconds
            assert agent_metrics_request(agent_pk=agent_pk) is True  # a lone end: at once
            assert agent_metrics_request(agent_pk=agent_pk) is False  # within the window: scheduled
            with agent_metrics._lock:
                windows[agent_pk] = agent_metrics._agents[agent_pk].timer.interval
        assert 0.9 < windows[cheap] <= 1.0  # what was left of the configured second
        assert windows[costly] >= 0.2 / 0.02 - 0.1  # ≥ 10 s: the 0.2 s it took over a 2 % share
    finally:
        with agent_metrics._lock:
            for agent_pk in (cheap, costly):
                refresh = agent_metrics._agents.pop(agent_pk, None)
                if refresh is not None and refresh.timer is not None:
                    refresh.timer.cancel()
