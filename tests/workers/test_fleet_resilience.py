"""The fleet through failures, end to end: real `celery worker` subprocesses, PostgreSQL, Redis.

Drain with finishing sessions, idle/max-duration limits freeing slots, a database failing
while a finished session is closed, and a worker with no live consumer.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from agents import services as agent_services
from sessions.models import AgentSession, SessionStatus
from tests.helpers import wait_for
from tests.workers.fleet import Fleet, poll
from workers.dispatch import job_cancel_request, job_dispatch
from workers.models import Job, JobStatus, Worker, WorkerStatus

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120),
              pytest.mark.usefixtures("fleet_settings")]
ECHO = "sessions.entrypoints:echo_session"


def limited_agent(agent_id: str, **turn: int) -> Any:
    agent = agent_services.agent_create(agent_id=agent_id, instructions="Echo.", actor="test",
                                        llm_config={"provider": "openai", "model": "gpt-4o-mini"}, turn_config=turn)
    return agent_services.agent_activate(agent=agent)


def echo_job(agent: Any, room: str, **kw: Any) -> Job:
    return job_dispatch(agent_id=agent.agent_id, room=room, transport="local", **kw)


def session_of(job: Job) -> AgentSession | None:
    return AgentSession.objects.filter(job=job).first()


def test_sigterm_drain_lets_every_session_that_ends_in_time_complete(fleet: Fleet, active_agent: Any) -> None:
    (w1,) = fleet.start("w1", WORKER_ENTRY_POINT=ECHO, WORKER_DRAIN_TIMEOUT=20)
    jobs = [echo_job(active_agent, f"drain-{i}", metadata={"echo_end_after_s": 2 + i}) for i in range(3)]
    for job in jobs:
        wait_for(lambda job=job: (s := session_of(job)) is not None and s.status == SessionStatus.ACTIVE, timeout=20,
                 what="the sessions running")

    w1.sigterm()
    assert w1.proc.wait(40) == 0
    for job in jobs:
        session = session_of(job)
        assert session is not None and session.status == SessionStatus.DISCONNECTED
        assert session.end_reason == "completed", session.end_reason  # none cut by the drain
        assert session.events.filter(type="session_stopped", data__reason="completed").exists()
        assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED
    assert Worker.objects.get(pk=w1.name).status == WorkerStatus.OFFLINE


def test_an_idle_session_ends_and_its_slot_goes_to_the_waiting_job_at_once(fleet: Fleet) -> None:
    agent = limited_agent("idle-agent", idle_timeout_s=2, max_duration_s=0)
    fleet.start("w1", concurrency=2, WORKER_ENTRY_POINT=ECHO, WORKER_MAX_CONCURRENT_JOBS=1)
    first = echo_job(agent, "idle-1")
    wait_for(lambda: Job.objects.get(pk=first.pk).status == JobStatus.RUNNING, timeout=20, what="the first session")
    second = echo_job(agent, "idle-2")
    assert Job.objects.get(pk=second.pk).status == JobStatus.PENDING  # the only slot is taken

    # no maintenance loop runs here: only the freed slot can start the second job
    done = wait_for(lambda: (j := Job.objects.get(pk=first.pk)).is_finished and j, timeout=20, what="the idle session ended")
    assert done.status == JobStatus.COMPLETED
    assert session_of(first).end_reason == "idle_timeout"  # type: ignore[union-attr]
    wait_for(lambda: Job.objects.get(pk=second.pk).status == JobStatus.RUNNING, timeout=10, what="the waiting job started")
    job_cancel_request(job_id=second.pk, actor="test")


def test_talking_keeps_a_session_from_its_idle_timeout_and_max_duration_still_ends_it(fleet: Fleet) -> None:
    from sessions.control import send_session_command

    agent = limited_agent("max-agent", idle_timeout_s=2, max_duration_s=5)
    fleet.start("w1", WORKER_ENTRY_POINT=ECHO)
    job = echo_job(agent, "talk")
    session = wait_for(lambda: (s := session_of(job)) is not None and s.status == SessionStatus.ACTIVE and s, timeout=20,
                       what="the session")
    replies = 0

    def ended_while_talking() -> bool:
        nonlocal replies
        if Job.objects.get(pk=job.pk).is_finished:
            return True
        try:
            send_session_command(session.pk, "message", actor="test", text="still here")
            replies += 1
        except Exception:  # noqa: BLE001 - the session ended between the check and the send; its job ends next
            pass
        return False

    wait_for(ended_while_talking, timeout=32, interval=0.8, what="the session to end at its max_duration_s")
    session.refresh_from_db()
    assert session.end_reason == "max_duration"
    assert replies >= 4  # talked past the 2 s idle timeout without being cut
    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED


@pytest.fixture
def failing_close() -> Iterator[str]:
    """PostgreSQL itself refuses the first writes that close a session and finish its job,
    with a connection-failure error (SQLSTATE 08006), as during a database restart."""
    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE SEQUENCE close_failures;
            CREATE FUNCTION fail_close() RETURNS trigger AS $$
            BEGIN
                IF nextval('close_failures') <= 8 THEN
                    RAISE EXCEPTION 'injected: database went away at close' USING ERRCODE = '08006';
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER fail_session_close BEFORE UPDATE ON agent_sessions_agentsession
                FOR EACH ROW WHEN (NEW.status = 'disconnected' AND OLD.status <> 'disconnected') EXECUTE FUNCTION fail_close();
            CREATE TRIGGER fail_job_finish BEFORE UPDATE ON workers_job
                FOR EACH ROW WHEN (NEW.status = 'completed' AND OLD.status = 'running') EXECUTE FUNCTION fail_close();
        """)
    yield "close_failures"
    with connection.cursor() as cursor:
        cursor.execute("""
            DROP TRIGGER IF EXISTS fail_session_close ON agent_sessions_agentsession;
            DROP TRIGGER IF EXISTS fail_job_finish ON workers_job;
            DROP FUNCTION IF EXISTS fail_close();
            DROP SEQUENCE IF EXISTS close_failures;
        """)


def test_a_database_error_at_close_never_starts_a_second_session(fleet: Fleet, active_agent: Any,
                                                                   failing_close: str) -> None:
    w1, w2 = fleet.start("w1", "w2", WORKER_ENTRY_POINT=ECHO)
    job = echo_job(active_agent, "closing", metadata={"echo_end_after_s": 1})
    # the close fails for longer than a lease + offline window; maintenance runs all along
    finished = poll(lambda: (j := Job.objects.get(pk=job.pk)).is_finished and j, timeout=60, what="the job finished")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT last_value FROM {failing_close}")
        assert cursor.fetchone()[0] >= 8  # the failures really happened
    for _ in range(10):  # and the reaper keeps finding nothing to take back
        poll(lambda: True, timeout=1)
    assert finished.status == JobStatus.COMPLETED and finished.attempts == 1
    sessions = list(AgentSession.objects.filter(user_data__job_id=job.pk))
    assert len(sessions) == 1
    assert sessions[0].status == SessionStatus.DISCONNECTED and sessions[0].end_reason == "completed"
    logs = w1.log() + w2.log()
    assert "database unavailable" in logs and "retrying" in logs


def test_a_worker_reports_unready_while_its_consumer_is_away(fleet: Fleet, active_agent: Any, tmp_path: Path) -> None:
    """The worker's broker goes away (its own Redis, stopped here): the row says `unready`
    with the reason and jobs wait; once the broker is back the worker is online and the
    waiting job runs there."""
    import subprocess
    import urllib.error
    import urllib.request

    port = 6459
    data = tmp_path / "redis"
    data.mkdir()

    def start_redis() -> None:
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                        "--appendonly", "no", "--dir", str(data)], check=True, stdout=subprocess.DEVNULL)
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0,
                 timeout=10, what="own redis up")

    def stop_redis() -> None:
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)

    start_redis()
    try:
        broker = f"redis://127.0.0.1:{port}/0"
        (w1,) = fleet.start("w1", WORKER_ENTRY_POINT=ECHO, CELERY_BROKER_URL=broker, WORKER_HEALTH_CHECK_PORT=18415)
        running = echo_job(active_agent, "before")
        # this test process dispatches through the suite's broker; the worker listens on its
        # own Redis: deliver the assignment there
        from celery.utils.nodenames import worker_direct

        from controlplane.celery import app

        assert Job.objects.get(pk=running.pk).assigned_worker_id == w1.name
        with app.connection_for_write(broker) as conn:
            app.send_task("workers.run_session", args=[running.pk], queue=worker_direct(w1.name), connection=conn)
        wait_for(lambda: Job.objects.get(pk=running.pk).status == JobStatus.RUNNING, timeout=20, what="a session")

        stop_redis()
        row = wait_for(lambda: (w := Worker.objects.get(pk=w1.name)).status == WorkerStatus.UNREADY and w, timeout=10,
                       what="the worker unready")
        assert "broker connection lost" in row.status_reason
        try:
            urllib.request.urlopen("http://127.0.0.1:18415/health/ready", timeout=5)
            raise AssertionError("ready while the consumer is away")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503 and "consumer" in exc.read().decode()
        waiting = echo_job(active_agent, "during")
        assert Job.objects.get(pk=waiting.pk).status == JobStatus.PENDING  # not sent into a dead queue

        start_redis()  # empty: kombu's bindings are gone too
        wait_for(lambda: Worker.objects.get(pk=w1.name).status == WorkerStatus.ONLINE, timeout=30, what="online again")
        # back online, the worker hands its capacity to the waiting job itself, through its
        # re-declared queue (no maintenance loop runs here)
        wait_for(lambda: Job.objects.get(pk=waiting.pk).status == JobStatus.RUNNING, timeout=20, what="the job runs")
        assert Job.objects.get(pk=waiting.pk).assigned_worker_id == w1.name
        assert Job.objects.get(pk=running.pk).status == JobStatus.RUNNING  # the live session went on
        assert "Unrecoverable error" not in w1.log()
    finally:
        stop_redis()
