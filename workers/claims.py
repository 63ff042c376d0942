"""Claims and leases: Celery delivers, the database decides who runs a job.

A worker claims an assigned job with one conditional UPDATE (assigned to me → running,
lease set, attempt counted). A duplicate or late delivery finds the claim taken and exits.
While the session runs, the worker's heartbeat renews the lease; a job whose lease
expires is taken back by the reaper.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, JSONField, OuterRef, Subquery
from django.utils import timezone

from workers.events import publish as publish_fleet_event
from agents.models import AgentVersion
from workers.models import Job, JobStatus


def lease_deadline(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=settings.JOB_LEASE_SECONDS)


def job_claim(*, job_id: str, worker_id: str) -> Job | None:
    """Take an assigned job for this worker; None when another delivery or worker has it."""
    now = timezone.now()
    won = Job.objects.filter(pk=job_id, status=JobStatus.ASSIGNED, assigned_worker_id=worker_id).update(
        status=JobStatus.RUNNING, started_at=now, lease_expires_at=lease_deadline(now), attempts=F("attempts") + 1
    )
    if not won:
        return None
    # one read for the job, its agent and the config of the version it was dispatched with
    version_config = AgentVersion.objects.filter(agent=OuterRef("agent"), version=OuterRef("agent_version")).values("config")[:1]
    job = (Job.objects.select_related("agent").annotate(version_config=Subquery(version_config, output_field=JSONField()))
           .get(pk=job_id))
    publish_fleet_event("job", {"job_id": job_id, "status": JobStatus.RUNNING, "worker_id": worker_id, "attempts": job.attempts})
    return job


def leases_renew(*, worker_id: str, job_ids: Iterable[str]) -> set[str]:
    """Extend the leases of the jobs this worker runs; returns the ids it no longer holds
    (cancelled, or taken back after a missed lease), whose sessions must end."""
    ids = set(job_ids)
    if not ids:
        return set()
    Job.objects.filter(pk__in=ids, status=JobStatus.RUNNING, assigned_worker_id=worker_id).update(lease_expires_at=lease_deadline())
    held = set(
        Job.objects.filter(pk__in=ids, status=JobStatus.RUNNING, assigned_worker_id=worker_id).values_list("job_id", flat=True)
    )
    return ids - held


def job_holds(*, job_id: str, worker_id: str) -> bool:
    return Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, assigned_worker_id=worker_id).exists()


def job_finish(*, job_id: str, worker_id: str, failure: str | None = None) -> bool:
    """Record the outcome if this worker still holds the job; False when it no longer does
    (cancelled meanwhile, or taken back), in which case the job keeps that other outcome."""
    now = timezone.now()
    status = JobStatus.FAILED if failure else JobStatus.COMPLETED
    won = Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, assigned_worker_id=worker_id).update(
        status=status, completed_at=now, lease_expires_at=None, failure_reason=(failure or "")[:2000]
    )
    if won:
        publish_fleet_event("job", {"job_id": job_id, "status": status, "worker_id": worker_id, "failure_reason": failure or ""})
    return bool(won)


def job_release(*, job_id: str, worker_id: str, reason: str) -> bool:
    """Hand an assigned, not yet started job back to the queue (a draining worker refuses it)."""
    won = Job.objects.filter(pk=job_id, status=JobStatus.ASSIGNED, assigned_worker_id=worker_id).update(
        status=JobStatus.PENDING, assigned_worker=None, assigned_at=None, failure_reason=reason[:2000]
    )
    if won:
        publish_fleet_event("job", {"job_id": job_id, "status": JobStatus.PENDING, "reason": reason})
    return bool(won)
