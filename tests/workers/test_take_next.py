"""A worker whose slot just freed takes the next waiting job itself (workers.dispatch.job_take_next):
in dispatch order, only a job it serves, only while its row is online with a closed circuit and
a free slot, and never a job another worker took meanwhile."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from workers.dispatch import job_dispatch, job_take_next
from workers.models import CircuitState, Job, JobStatus, Worker, WorkerStatus

pytestmark = pytest.mark.django_db(transaction=True)
SERVES = ["voice_agent", "text_agent"]


def waiting(agent: Any, n: int, **kwargs: Any) -> list[Job]:
    """n pending jobs (no worker is online when they are dispatched)."""
    jobs = [job_dispatch(agent_id=agent.agent_id, room=f"room-{i}", transport="local", **kwargs) for i in range(n)]
    assert all(Job.objects.get(pk=j.pk).status == JobStatus.PENDING for j in jobs)
    return jobs


def test_it_takes_the_first_job_in_dispatch_order_and_says_others_wait(active_agent: Any, online_worker: Any) -> None:
    low = waiting(active_agent, 1, priority=5)[0]
    high = job_dispatch(agent_id=active_agent.agent_id, room="urgent", transport="local", priority=1)
    online_worker("celery@w1", capacity=5)
    taken, more, full = job_take_next(worker_id="celery@w1", serves=SERVES)
    assert taken == high.job_id and more is True and full is False
    job = Job.objects.get(pk=high.pk)
    assert (job.status, job.assigned_worker_id) == (JobStatus.ASSIGNED, "celery@w1") and job.assigned_at is not None
    assert job_take_next(worker_id="celery@w1", serves=SERVES) == (low.job_id, False, False)
    assert job_take_next(worker_id="celery@w1", serves=SERVES) == (None, False, False)


@pytest.mark.parametrize("row", [{"status": WorkerStatus.DRAINING}, {"status": WorkerStatus.UNREADY},
                                 {"circuit_state": CircuitState.OPEN}, {"circuit_state": CircuitState.HALF_OPEN}])
def test_a_worker_that_may_not_get_jobs_takes_none(active_agent: Any, online_worker: Any, row: dict[str, Any]) -> None:
    job = waiting(active_agent, 1)[0]
    online_worker("celery@w1")
    Worker.objects.filter(pk="celery@w1").update(**row)
    # not for want of a slot: the caller routes the queue across the fleet
    assert job_take_next(worker_id="celery@w1", serves=SERVES) == (None, True, False)
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING


def test_a_worker_with_no_free_slot_takes_none(active_agent: Any, online_worker: Any) -> None:
    jobs = waiting(active_agent, 2)
    online_worker("celery@w1", capacity=1)
    Job.objects.filter(pk=jobs[0].pk).update(status=JobStatus.RUNNING, assigned_worker_id="celery@w1")
    assert job_take_next(worker_id="celery@w1", serves=SERVES) == (None, True, True)
    assert Job.objects.get(pk=jobs[1].pk).status == JobStatus.PENDING


def test_a_job_of_a_type_the_worker_does_not_serve_stays_waiting(active_agent: Any, online_worker: Any) -> None:
    job = waiting(active_agent, 1)[0]
    Job.objects.filter(pk=job.pk).update(worker_type="multimodal_agent")
    online_worker("celery@w1")
    assert job_take_next(worker_id="celery@w1", serves=SERVES) == (None, True, False)
    assert job_take_next(worker_id="celery@w1", serves=["multimodal_agent"]) == (job.job_id, False, False)


def test_workers_freeing_slots_at_once_take_different_jobs(active_agent: Any, online_worker: Any) -> None:
    jobs = waiting(active_agent, 8)
    workers = [f"celery@w{i}" for i in range(8)]
    for worker_id in workers:
        online_worker(worker_id, capacity=1)
    start = threading.Barrier(len(workers))
    taken: dict[str, str | None] = {}

    def take(worker_id: str) -> None:
        try:
            start.wait()
            taken[worker_id] = job_take_next(worker_id=worker_id, serves=SERVES)[0]
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    got = [job_id for job_id in taken.values() if job_id is not None]
    assert len(got) == len(set(got)), "a job was taken twice"
    # whoever took a job holds it; a skipped (locked) row is still waiting for the next free slot
    for worker_id, job_id in taken.items():
        if job_id is not None:
            assert Job.objects.get(pk=job_id).assigned_worker_id == worker_id
    assert Job.objects.filter(pk__in=[j.pk for j in jobs], status=JobStatus.ASSIGNED).count() == len(got)


def test_a_freed_slot_already_refilled_does_not_route_the_queue_across_the_fleet(
        active_agent: Any, online_worker: Any, echo_node: Any, busy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import session_runner
    from workers.job_end import job_end

    job = waiting(active_agent, 1)[0]
    worker = online_worker(echo_node.worker_id, capacity=1)
    busy(worker, 2)  # the job ending, and a new dispatch that took the slot it frees
    ending, other = Job.objects.filter(assigned_worker=worker).order_by("pk")
    routed: list[int] = []
    monkeypatch.setattr(session_runner, "jobs_assign_pending", lambda limit: routed.append(limit) or 0)
    end = job_end(job_id=ending.pk, worker_id=worker.pk, failure=None, close_circuit=True, take_next=True, serves=SERVES)
    assert (end.recorded, end.taken, end.full) == (True, None, True)
    session_runner._route_waiting_jobs(end)
    assert routed == [] and Job.objects.get(pk=job.pk).status == JobStatus.PENDING
    # a free slot it may not use (its circuit opened after a fault of its own): the fleet is asked
    Worker.objects.filter(pk=echo_node.worker_id).update(circuit_state=CircuitState.OPEN)
    end = job_end(job_id=other.pk, worker_id=worker.pk, failure="crash", close_circuit=False, take_next=False, serves=[])
    assert (end.recorded, end.taken, end.more, end.full) == (True, None, True, False)
    session_runner._route_waiting_jobs(end)
    assert routed == [10]
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING
