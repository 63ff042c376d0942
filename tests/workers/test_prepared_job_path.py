"""The worker's per-job statements and the dispatcher's fleet reads run as prepared statements
(controlplane.prepared_statements): parsed and planned once per connection. With PostgreSQL
binding the parameters (not psycopg quoting them into the text) every parameter's type must
still resolve: a text id, a list for `= ANY(…)`, booleans in `AND %s`, timestamps, a NULL
failure reason. The answers themselves are the other test files' (test_claims, test_job_end,
test_take_next, test_breaker, test_dispatch_reads); here each statement runs prepared, once
per call, and answers."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from tests.prepared_helpers import prepared_runs
from workers import dispatch
from workers.breaker import breaker_record_success
from workers.claims import job_claim, job_finish
from workers.job_end import JobEnd, job_end
from workers.models import CircuitState, Job, JobStatus, Worker

pytestmark = pytest.mark.django_db
WORKER = "celery@prepared"


def job(agent: Any, status: str, worker: Worker | None = None, room: str = "r") -> Job:
    return Job.objects.create(agent=agent, room_name=room, status=status, assigned_worker=worker,
                              lease_expires_at=timezone.now() + timedelta(seconds=60) if worker else None)


def test_the_claim_runs_prepared(active_agent: Any, online_worker: Any) -> None:
    worker = online_worker(WORKER)
    before = prepared_runs('UPDATE "workers_job" SET status =')
    for room in ("a", "b"):  # the second claim runs the statement the first prepared
        claimed = job_claim(job_id=job(active_agent, JobStatus.ASSIGNED, worker, room).pk, worker_id=WORKER)
        assert claimed is not None and claimed.status == JobStatus.RUNNING and claimed.agent == active_agent
    assert prepared_runs('UPDATE "workers_job" SET status =') == before + 2


@pytest.mark.parametrize("failure", [None, "tool broke"])
def test_the_one_statement_job_end_runs_prepared_not_its_step_by_step_fallback(
        failure: str | None, active_agent: Any, online_worker: Any, sent: list[tuple[str, str]]) -> None:
    worker = online_worker(WORKER, capacity=1, circuit_state=CircuitState.HALF_OPEN, circuit_opened_at=timezone.now())
    ending, waiting = job(active_agent, JobStatus.RUNNING, worker), job(active_agent, JobStatus.PENDING, room="w")
    before = prepared_runs("WITH breaker AS")

    result = job_end(job_id=ending.pk, worker_id=WORKER, failure=failure, close_circuit=failure is None,
                     take_next=True, serves=["voice_agent"])

    assert prepared_runs("WITH breaker AS") == before + 1
    if failure is None:  # the success closed the half-open circuit, so the slot takes the waiting job
        assert result == JobEnd(recorded=True, taken=waiting.pk, more=False, full=False)
        assert sent == [(waiting.pk, WORKER)]
    else:  # a half-open circuit takes nothing after a failure
        assert (result.recorded, result.taken) == (True, None)
    assert Job.objects.get(pk=ending.pk).failure_reason == (failure or "")


def test_the_take_next_runs_prepared(active_agent: Any, online_worker: Any, sent: list[tuple[str, str]]) -> None:
    online_worker(WORKER, capacity=2)
    waiting = job(active_agent, JobStatus.PENDING)
    before = prepared_runs("WITH slot AS")

    assert dispatch.job_take_next(worker_id=WORKER, serves=[]) == (waiting.pk, False, False)  # an empty list too

    assert prepared_runs("WITH slot AS") == before + 1
    # the job statuses are in its text (a generic plan blind to them seq-scanned every job to
    # count the worker's active ones)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE starts_with(statement, 'WITH slot AS')")
        [(statement,)] = cursor.fetchall()
    assert "a.status IN ('assigned', 'running')" in statement and "j.status = 'pending'" in statement


def test_the_fleet_reads_run_prepared(active_agent: Any, online_worker: Any) -> None:
    online_worker(WORKER)
    fleet, combined = 'SELECT w."worker_id"', "SELECT (SELECT ROW_TO_JSON(a)"
    before = prepared_runs(fleet), prepared_runs(combined)

    assert [w.worker_id for w, _ in dispatch.worker_candidates()] == [WORKER]
    agent, workers = dispatch._agent_and_fleet(active_agent.agent_id, timezone.now())
    assert agent == active_agent and [w.worker_id for w in workers] == [WORKER]

    assert (prepared_runs(fleet), prepared_runs(combined)) == (before[0] + 1, before[1] + 1)


def test_the_fleet_reads_statuses_are_in_its_text_so_its_generic_plan_knows_them(online_worker: Any) -> None:
    """Its one parameter is the heartbeat deadline: a generic plan blind to the statuses counted
    each worker's active jobs by scanning every job it ever ran."""
    online_worker(WORKER)
    dispatch.worker_candidates()
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT parameter_types::text[] FROM pg_prepared_statements "
                       "WHERE starts_with(statement, %s)", ['SELECT w."worker_id"'])
        assert cursor.fetchall() == [(["timestamp with time zone"],)]


def test_the_circuit_close_and_the_machines_transitions_run_prepared(active_agent: Any, online_worker: Any) -> None:
    worker = online_worker(WORKER, circuit_state=CircuitState.HALF_OPEN, circuit_opened_at=timezone.now())
    running = job(active_agent, JobStatus.RUNNING, worker)
    close, transition = 'UPDATE "workers_worker" w SET circuit_state', 'UPDATE "workers_job" SET "status"'
    before = prepared_runs(close), prepared_runs(transition)

    breaker_record_success(worker_id=WORKER)
    assert job_finish(job_id=running.pk, worker_id=WORKER, failure=None)  # the job machine's conditional UPDATE

    assert (prepared_runs(close), prepared_runs(transition)) == (before[0] + 1, before[1] + 1)
    assert Worker.objects.get(pk=WORKER).circuit_state == CircuitState.CLOSED
    assert Job.objects.get(pk=running.pk).status == JobStatus.COMPLETED
