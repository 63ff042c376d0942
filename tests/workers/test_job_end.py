"""A job's end on its worker in one statement (workers.job_end): the same rows and the same fleet
events, in the same order, as the three statements it replaces (breaker_record_success,
job_finish, job_take_next) run one after another."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.workers.test_events import fleet_events_during
from workers import job_end as job_end_module
from workers.job_end import JobEnd, _job_end_steps, job_end
from workers.models import CircuitState, Job, JobStatus, Worker

pytestmark = pytest.mark.django_db(transaction=True)
SERVES = ["voice_agent"]
WORKER = "celery@end"


def running_job(agent: Any, worker: Worker, room: str = "r") -> Job:
    return Job.objects.create(agent=agent, room_name=room, status=JobStatus.RUNNING, assigned_worker=worker, attempts=1,
                              lease_expires_at=timezone.now() + timedelta(seconds=60))


def waiting_job(agent: Any, room: str = "w", **fields: Any) -> Job:
    return Job.objects.create(agent=agent, room_name=room, status=JobStatus.PENDING, **fields)


def scenario(agent: Any, online_worker: Any, *, capacity: int = 1, circuit: str = CircuitState.CLOSED,
             failures: int = 0, waiting: int = 1, busy: int = 0) -> tuple[Job, list[Job]]:
    """A worker running the job about to end (plus `busy` others), and `waiting` pending jobs."""
    Job.objects.all().delete()
    Worker.objects.all().delete()
    worker = online_worker(WORKER, capacity=capacity, circuit_state=circuit, consecutive_failures=failures,
                           circuit_opened_at=timezone.now() if circuit != CircuitState.CLOSED else None)
    ending = running_job(agent, worker)
    for i in range(busy):
        running_job(agent, worker, room=f"busy-{i}")
    return ending, [waiting_job(agent, room=f"w-{i}") for i in range(waiting)]


def outcome(run: Callable[[], JobEnd]) -> tuple[JobEnd, list[dict[str, Any]]]:
    result: list[JobEnd] = []
    events = fleet_events_during(lambda: result.append(run()))
    return result[0], [{"kind": m["kind"], **m["data"]} for m in events]


def anonymous(events: list[dict[str, Any]], ending: Job, waiting: list[Job]) -> list[dict[str, Any]]:
    names = {ending.pk: "ending", **{job.pk: f"waiting-{i}" for i, job in enumerate(waiting)}}
    return [{**e, "job_id": names[e["job_id"]]} if "job_id" in e else e for e in events]


def rows() -> dict[str, Any]:
    jobs = sorted((room, status, worker, reason, lease is not None) for room, status, worker, reason, lease in
                  Job.objects.values_list("room_name", "status", "assigned_worker_id", "failure_reason", "lease_expires_at"))
    worker = Worker.objects.values("circuit_state", "consecutive_failures", "circuit_opened_at").get(pk=WORKER)
    return {"jobs": jobs, "worker": {**worker, "circuit_opened_at": worker["circuit_opened_at"] is not None}}


CASES = {
    "success, the freed slot takes the next job": dict(kwargs={}, args={"failure": None, "close_circuit": True}),
    "success closes a half-open circuit and takes the next job": dict(
        kwargs={"circuit": CircuitState.HALF_OPEN}, args={"failure": None, "close_circuit": True}),
    "success resets the failure count": dict(kwargs={"failures": 2}, args={"failure": None, "close_circuit": True}),
    "the slot was refilled meanwhile": dict(kwargs={"busy": 1}, args={"failure": None, "close_circuit": True}),
    "a job's own failure takes the next job on a closed circuit": dict(
        kwargs={"capacity": 2}, args={"failure": "tool broke", "close_circuit": False}),
    "a failure leaves a half-open circuit, which takes nothing": dict(
        kwargs={"circuit": CircuitState.HALF_OPEN}, args={"failure": "boom", "close_circuit": False}),
    "nothing waits": dict(kwargs={"waiting": 0}, args={"failure": None, "close_circuit": True}),
    "not asked to take (draining, a fault of its own)": dict(
        kwargs={}, args={"failure": "crash", "close_circuit": False, "take_next": False}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_statement_ends_the_job_as_the_three_statements_did(
        case: str, active_agent: Any, online_worker: Any, sent: list[tuple[str, str]]) -> None:
    kwargs, args = CASES[case]["kwargs"], {"take_next": True, **CASES[case]["args"]}
    results = {}
    for name, end in (("steps", _job_end_steps), ("one statement", None)):
        ending, waiting = scenario(active_agent, online_worker, **kwargs)
        sent.clear()

        def run(ending: Job = ending, end: Any = end) -> JobEnd:
            if end is not None:
                return end(ending.pk, WORKER, args["failure"], args["close_circuit"], args["take_next"], SERVES)
            with CaptureQueriesContext(connection) as queries:
                result = job_end(job_id=ending.pk, worker_id=WORKER, serves=SERVES, **args)
            assert len(queries.captured_queries) == 1
            return result

        result, events = outcome(run)
        taken = {job.pk: f"waiting-{i}" for i, job in enumerate(waiting)}.get(result.taken) if result.taken else None
        results[name] = (result.recorded, taken, result.full, anonymous(events, ending, waiting), rows(),
                         [(taken, worker) for _, worker in sent])
        if name == "steps" and result.more is not None:
            more_steps = result.more
        elif result.more is not None and args["take_next"]:
            assert result.more == more_steps
    assert results["one statement"] == results["steps"]


def test_the_events_say_what_the_end_did(active_agent: Any, online_worker: Any, sent: list[tuple[str, str]]) -> None:
    ending, [next_job] = scenario(active_agent, online_worker, circuit=CircuitState.HALF_OPEN)
    result, events = outcome(lambda: job_end(job_id=ending.pk, worker_id=WORKER, failure=None, close_circuit=True,
                                             take_next=True, serves=SERVES))
    assert result == JobEnd(recorded=True, taken=next_job.pk, more=False, full=False)
    assert events == [
        {"kind": "worker", "worker_id": WORKER, "circuit_state": CircuitState.CLOSED},
        {"kind": "job", "job_id": ending.pk, "status": JobStatus.COMPLETED, "worker_id": WORKER, "failure_reason": ""},
        {"kind": "job", "job_id": next_job.pk, "status": JobStatus.ASSIGNED, "worker_id": WORKER, "attempts": 0},
    ]
    assert sent == [(next_job.pk, WORKER)]
    stored = Job.objects.get(pk=ending.pk)
    assert (stored.status, stored.lease_expires_at, stored.failure_reason) == (JobStatus.COMPLETED, None, "")
    assert stored.completed_at is not None


def test_a_job_cancelled_meanwhile_keeps_its_outcome_and_its_slot_is_still_used(
        active_agent: Any, online_worker: Any, sent: list[tuple[str, str]]) -> None:
    ending, [next_job] = scenario(active_agent, online_worker)
    Job.objects.filter(pk=ending.pk).update(status=JobStatus.CANCELLED)
    result, events = outcome(lambda: job_end(job_id=ending.pk, worker_id=WORKER, failure=None, close_circuit=True,
                                             take_next=True, serves=SERVES))
    assert (result.recorded, result.taken) == (False, next_job.pk)
    assert [e["job_id"] for e in events if e["kind"] == "job"] == [next_job.pk]
    assert Job.objects.get(pk=ending.pk).status == JobStatus.CANCELLED


def test_any_failure_of_the_one_statement_but_a_lost_connection_falls_back_to_the_steps(
        active_agent: Any, online_worker: Any, sent: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    ending, [next_job] = scenario(active_agent, online_worker)

    def broken(*args: Any) -> JobEnd:
        raise ValueError("a bug in the statement")

    monkeypatch.setattr(job_end_module, "_job_end_returning", broken)
    result = job_end(job_id=ending.pk, worker_id=WORKER, failure=None, close_circuit=True, take_next=True, serves=SERVES)
    assert (result.recorded, result.taken) == (True, next_job.pk)
    assert Job.objects.get(pk=ending.pk).status == JobStatus.COMPLETED
