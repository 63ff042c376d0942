from __future__ import annotations

from typing import Any

from workers.claims import job_claim, job_finish, job_release, leases_renew
from workers.dispatch import job_cancel_request, job_dispatch
from workers.models import Job, JobStatus
from workers.services import job_assign, job_requeue


def assigned_job(agent: Any, worker_id: str) -> Job:
    job = job_dispatch(agent_id=agent.agent_id, room="r", transport="local")
    if job.assigned_worker_id != worker_id:  # the dispatcher chose another worker
        job = job_assign(job=job_requeue(job=job, reason="test"), worker_id=worker_id)
    return job


def test_claim_twice_only_one_wins(active_agent: Any, online_worker: Any) -> None:
    worker = online_worker("w1@unit")
    job = assigned_job(active_agent, worker.pk)
    first = job_claim(job_id=job.pk, worker_id=worker.pk)
    assert first is not None and first.status == JobStatus.RUNNING and first.attempts == 1 and first.lease_expires_at
    assert job_claim(job_id=job.pk, worker_id=worker.pk) is None


def test_another_worker_cannot_claim_a_job_assigned_elsewhere(active_agent: Any, online_worker: Any) -> None:
    one, two = online_worker("w1@unit"), online_worker("w2@unit")
    job = assigned_job(active_agent, one.pk)
    assert job_claim(job_id=job.pk, worker_id=two.pk) is None


def test_renewing_leases_extends_them_and_reports_cancelled_jobs(active_agent: Any, online_worker: Any, settings: Any) -> None:
    worker = online_worker("w1@unit")
    kept = job_claim(job_id=assigned_job(active_agent, worker.pk).pk, worker_id=worker.pk)
    cancelled = job_claim(job_id=assigned_job(active_agent, worker.pk).pk, worker_id=worker.pk)
    job_cancel_request(job_id=cancelled.pk)
    settings.JOB_LEASE_SECONDS = 600
    assert leases_renew(worker_id=worker.pk, job_ids=[kept.pk, cancelled.pk]) == {cancelled.pk}
    assert Job.objects.get(pk=kept.pk).lease_expires_at > kept.lease_expires_at


def test_finishing_a_cancelled_job_keeps_it_cancelled(active_agent: Any, online_worker: Any) -> None:
    worker = online_worker("w1@unit")
    job = job_claim(job_id=assigned_job(active_agent, worker.pk).pk, worker_id=worker.pk)
    job_cancel_request(job_id=job.pk)
    assert job_finish(job_id=job.pk, worker_id=worker.pk) is False
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED


def test_a_released_job_goes_back_to_pending_without_using_an_attempt(active_agent: Any, online_worker: Any) -> None:
    worker = online_worker("w1@unit")
    job = assigned_job(active_agent, worker.pk)
    assert job_release(job_id=job.pk, worker_id=worker.pk, reason="draining")
    job.refresh_from_db()
    assert (job.status, job.attempts, job.assigned_worker_id) == (JobStatus.PENDING, 0, None)


def test_the_claimed_job_reads_like_an_orm_row(active_agent: Any, online_worker: Any) -> None:
    from django.forms.models import model_to_dict

    worker = online_worker("w1@unit")
    job = assigned_job(active_agent, worker.pk)
    Job.objects.filter(pk=job.pk).update(metadata={"a": [1, 2]}, room={"name": "r", "sid": "RM_1"})
    claimed = job_claim(job_id=job.pk, worker_id=worker.pk)
    fresh = Job.objects.select_related("agent").get(pk=job.pk)
    assert model_to_dict(claimed) == model_to_dict(fresh)
    assert (claimed.created_at, claimed.started_at) == (fresh.created_at, fresh.started_at)
    assert model_to_dict(claimed.agent) == model_to_dict(fresh.agent) and claimed.agent.created_at == fresh.agent.created_at
    assert claimed.version_config == active_agent.versions.get(version=job.agent_version).config
