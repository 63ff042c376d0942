from __future__ import annotations

from datetime import timedelta
from typing import Any

import time_machine
from django.utils import timezone

from workers.claims import job_claim
from workers.dispatch import job_dispatch
from workers.models import Job, JobStatus, Worker, WorkerStatus
from workers.reaper import reap
from workers.services import job_assign, job_requeue


def assigned_job(agent: Any, worker_id: str) -> Job:
    job = job_dispatch(agent_id=agent.agent_id, room="r", transport="local")
    if job.assigned_worker_id != worker_id:
        job = job_assign(job=job_requeue(job=job, reason="test"), worker_id=worker_id)
    return job


def running_job(agent: Any, worker_id: str, **fields: Any) -> Job:
    job = assigned_job(agent, worker_id)
    Job.objects.filter(pk=job.pk).update(**fields)
    return job_claim(job_id=job.pk, worker_id=worker_id)


def test_an_expired_lease_requeues_the_job_with_its_attempt_counted(active_agent: Any, online_worker: Any, settings: Any) -> None:
    settings.JOB_LEASE_SECONDS = 3
    worker = online_worker("w1@unit")
    job = running_job(active_agent, worker.pk)
    with time_machine.travel(timezone.now() + timedelta(seconds=4)):
        Worker.objects.filter(pk=worker.pk).update(last_heartbeat_at=timezone.now())
        counts = reap(assign=False)
    job.refresh_from_db()
    assert counts["leases_expired"] == 1
    assert (job.status, job.attempts, job.assigned_worker_id) == (JobStatus.PENDING, 1, None)
    assert "lease expired" in job.failure_reason


def test_a_job_out_of_attempts_fails_with_the_reason(active_agent: Any, online_worker: Any, settings: Any) -> None:
    settings.JOB_LEASE_SECONDS = 3
    worker = online_worker("w1@unit")
    job = running_job(active_agent, worker.pk, max_attempts=1)
    with time_machine.travel(timezone.now() + timedelta(seconds=4)):
        reap(assign=False)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "gave up after 1 attempt" in job.failure_reason and job.completed_at


def test_a_silent_worker_goes_offline_and_its_jobs_are_redispatched(active_agent: Any, online_worker: Any, settings: Any) -> None:
    settings.WORKER_OFFLINE_AFTER_SECONDS = 5
    settings.JOB_LEASE_SECONDS = 600
    dead = online_worker("dead@unit")
    job = running_job(active_agent, dead.pk)
    with time_machine.travel(timezone.now() + timedelta(seconds=6)):
        alive = online_worker("alive@unit")
        counts = reap()
    dead.refresh_from_db()
    job.refresh_from_db()
    assert counts["workers_offline"] == 1 and dead.status == WorkerStatus.OFFLINE
    assert (job.status, job.assigned_worker_id, job.attempts) == (JobStatus.ASSIGNED, alive.pk, 1)
    assert "stopped sending heartbeats" in job.failure_reason


def test_a_renewed_lease_is_left_alone(active_agent: Any, online_worker: Any, settings: Any) -> None:
    settings.JOB_LEASE_SECONDS = 30
    worker = online_worker("w1@unit")
    job = running_job(active_agent, worker.pk)
    assert reap(assign=False)["leases_expired"] == 0
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING


def test_an_assigned_job_nobody_claims_goes_back_to_the_queue(active_agent: Any, online_worker: Any, settings: Any) -> None:
    settings.JOB_LEASE_SECONDS = 3
    worker = online_worker("w1@unit")
    job = assigned_job(active_agent, worker.pk)
    with time_machine.travel(timezone.now() + timedelta(seconds=4)):
        Worker.objects.filter(pk=worker.pk).update(last_heartbeat_at=timezone.now())
        assert reap(assign=False)["unclaimed"] == 1
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and job.attempts == 0


def test_the_live_session_of_a_lost_job_is_marked_error(active_agent: Any, online_worker: Any, settings: Any) -> None:
    from sessions.models import AgentSession, SessionStatus

    settings.JOB_LEASE_SECONDS = 3
    worker = online_worker("w1@unit")
    job = running_job(active_agent, worker.pk)
    session = AgentSession.objects.create(job=job, agent=active_agent, agent_version=1, room_id="r", status=SessionStatus.ACTIVE)
    with time_machine.travel(timezone.now() + timedelta(seconds=4)):
        reap(assign=False)
    session.refresh_from_db()
    assert session.status == SessionStatus.ERROR and "lease expired" in session.error
