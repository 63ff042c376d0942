"""Failure handling: no job stays `running` forever.

Run periodically (beat, or the embedded periodic loop): workers whose heartbeat stopped
are marked offline and their jobs taken back; running jobs whose lease expired are taken
back; assigned jobs nobody claimed in time go back to the queue. A job taken back is
re-dispatched while it has attempts left, else failed with the reason.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from sessions.hosting import job_session_lost
from workers import breaker
from workers.dispatch import jobs_assign_pending
from workers.events import worker_status_changed
from workers.models import Job, JobStatus, Worker, WorkerStatus
from workers.services import JOB_MACHINE

log = logging.getLogger(__name__)


def job_take_back(*, job: Job, reason: str, expected_status: str, extra_filter: dict[str, Any] | None = None) -> str | None:
    """Requeue (attempts left) or fail (none left) a job its worker no longer serves.

    Conditional on the status and worker the caller saw, so a job that moved on meanwhile
    (completed, renewed its lease, claimed) is left alone. Returns the new status or None.
    """
    worker_id = job.assigned_worker_id  # the transition clears it on the job
    where = {"assigned_worker_id": worker_id, **(extra_filter or {})}
    now = timezone.now()
    if expected_status == JobStatus.RUNNING and job.attempts >= job.max_attempts:
        full_reason = f"{reason}; gave up after {job.attempts} attempt(s)"
        won = JOB_MACHINE.try_transition(
            job, JobStatus.FAILED, from_=(expected_status,), where=where,
            completed_at=now, lease_expires_at=None, failure_reason=full_reason[:2000],
        )
    else:
        full_reason = f"{reason}; re-dispatching (attempt {job.attempts} of {job.max_attempts} used)"
        won = JOB_MACHINE.try_transition(
            job, JobStatus.PENDING, from_=(expected_status,), where=where,
            assigned_worker=None, assigned_at=None, started_at=None, lease_expires_at=None, failure_reason=full_reason[:2000],
        )
    if not won:
        return None
    log.warning("job %s taken back from %s: %s", job.pk, worker_id, full_reason)
    if expected_status == JobStatus.RUNNING:
        job_session_lost(job_id=job.pk, reason=reason)
    if worker_id:
        breaker.breaker_record_failure(worker_id=worker_id)
    return job.status


def worker_mark_offline(*, worker_id: str, reason: str) -> int:
    """Mark a worker offline and take back its unfinished jobs; returns how many."""
    Worker.objects.filter(pk=worker_id).exclude(status=WorkerStatus.OFFLINE).update(status=WorkerStatus.OFFLINE, active_jobs=0, load=0.0)
    worker_status_changed(worker_id, WorkerStatus.OFFLINE, reason=reason)
    taken = 0
    for job in Job.objects.filter(assigned_worker_id=worker_id, status__in=(JobStatus.ASSIGNED, JobStatus.RUNNING)):
        taken += job_take_back(job=job, reason=reason, expected_status=job.status) is not None
    return taken


def reap(*, now: datetime | None = None, assign: bool = True) -> dict[str, int]:
    now = now or timezone.now()
    counts = {"workers_offline": 0, "leases_expired": 0, "unclaimed": 0, "assigned": 0}
    silent_since = now - timedelta(seconds=settings.WORKER_OFFLINE_AFTER_SECONDS)
    for worker_id in Worker.objects.filter(
        status__in=(WorkerStatus.ONLINE, WorkerStatus.UNREADY, WorkerStatus.DRAINING), last_heartbeat_at__lt=silent_since
    ).values_list("worker_id", flat=True):
        won = Worker.objects.filter(pk=worker_id, last_heartbeat_at__lt=silent_since).exclude(status=WorkerStatus.OFFLINE).update(
            status=WorkerStatus.OFFLINE
        )
        if won:
            counts["workers_offline"] += 1
            worker_mark_offline(worker_id=worker_id, reason=f"worker {worker_id} stopped sending heartbeats")

    for job in Job.objects.filter(status=JobStatus.RUNNING, lease_expires_at__lt=now):
        if job_take_back(
            job=job, reason=f"lease expired on worker {job.assigned_worker_id}", expected_status=JobStatus.RUNNING,
            extra_filter={"lease_expires_at__lt": now},
        ):
            counts["leases_expired"] += 1

    claim_deadline = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    for job in Job.objects.filter(status=JobStatus.ASSIGNED, assigned_at__lt=claim_deadline):
        if job_take_back(
            job=job, reason=f"worker {job.assigned_worker_id} did not start the job in time", expected_status=JobStatus.ASSIGNED,
            extra_filter={"assigned_at__lt": claim_deadline},
        ):
            counts["unclaimed"] += 1

    if assign:
        counts["assigned"] = jobs_assign_pending()
    return counts
