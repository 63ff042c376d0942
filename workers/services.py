"""State changes of jobs. The dispatcher and the session task build on these transitions."""
from __future__ import annotations

from django.utils import timezone

from controlplane.fleet_events import FleetEvents
from controlplane.state_machine import StateMachine
from workers.models import Job, JobStatus

JOB_MACHINE = StateMachine(
    "job",
    "status",
    {
        JobStatus.ASSIGNED: {JobStatus.PENDING},
        JobStatus.RUNNING: {JobStatus.ASSIGNED},
        JobStatus.COMPLETED: {JobStatus.RUNNING},
        JobStatus.FAILED: {JobStatus.PENDING, JobStatus.ASSIGNED, JobStatus.RUNNING},
        JobStatus.CANCELLED: {JobStatus.PENDING, JobStatus.ASSIGNED, JobStatus.RUNNING},
        # re-dispatch after a worker was lost (reliability model, DESIGN.md)
        JobStatus.PENDING: {JobStatus.ASSIGNED, JobStatus.RUNNING},
    },
    on_change=[FleetEvents("job", "job_id", {"worker_id": "assigned_worker_id", "attempts": "attempts"},
                           written={"failure_reason": ["failure_reason"]})],
)


def job_assign(*, job: Job, worker_id: str) -> Job:
    return JOB_MACHINE.transition(job, JobStatus.ASSIGNED, assigned_worker_id=worker_id, assigned_at=timezone.now())


def job_start(*, job: Job, lease_expires_at: object = None) -> Job:
    return JOB_MACHINE.transition(job, JobStatus.RUNNING, started_at=timezone.now(), lease_expires_at=lease_expires_at)


def job_complete(*, job: Job) -> Job:
    return JOB_MACHINE.transition(job, JobStatus.COMPLETED, completed_at=timezone.now(), lease_expires_at=None)


def job_fail(*, job: Job, reason: str) -> Job:
    return JOB_MACHINE.transition(job, JobStatus.FAILED, completed_at=timezone.now(), failure_reason=reason[:2000], lease_expires_at=None)


def job_cancel(*, job: Job, reason: str = "cancelled") -> Job:
    return JOB_MACHINE.transition(job, JobStatus.CANCELLED, completed_at=timezone.now(), failure_reason=reason[:2000], lease_expires_at=None)


def job_requeue(*, job: Job, reason: str) -> Job:
    return JOB_MACHINE.transition(
        job, JobStatus.PENDING, assigned_worker=None, assigned_at=None, started_at=None, lease_expires_at=None, failure_reason=reason[:2000]
    )
