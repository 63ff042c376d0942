"""Claims and leases: Celery delivers, the database decides who runs a job.

A worker claims an assigned job with one conditional UPDATE (assigned to me → running,
lease set, attempt counted). A duplicate or late delivery finds the claim taken and exits.
While the session runs, the worker's heartbeat renews the lease; a job whose lease
expires is taken back by the reaper.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F, JSONField, OuterRef, Subquery
from django.utils import timezone

from agents.models import Agent, AgentVersion
from controlplane.prepared_statements import prepared_cursor
from controlplane.sql_rows import json_value, model_from_json_row, model_from_row, select_columns
from workers.models import Job, JobStatus
from workers.services import JOB_MACHINE


def lease_deadline(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=settings.JOB_LEASE_SECONDS)


def job_claim(*, job_id: str, worker_id: str) -> Job | None:
    """Take an assigned job for this worker; None when another delivery or worker has it.

    The returned job carries `version_config` (the config of the agent version it was
    dispatched with) and its agent, read with the claim.
    """
    now = timezone.now()
    lease = lease_deadline(now)
    if connection.vendor == "postgresql":
        job = _claim_returning(job_id, worker_id, now, lease)  # the hot path: one round trip
    else:
        won = Job.objects.filter(pk=job_id, status=JobStatus.ASSIGNED, assigned_worker_id=worker_id).update(
            status=JobStatus.RUNNING, started_at=now, lease_expires_at=lease, attempts=F("attempts") + 1
        )
        job = _claimed(job_id) if won else None
    if job is None:
        return None
    JOB_MACHINE.announce(job)  # the claim is its own UPDATE (one round trip with RETURNING)
    return job


def _claimed(job_id: str) -> Job:
    version_config = AgentVersion.objects.filter(agent=OuterRef("agent"), version=OuterRef("agent_version")).values("config")[:1]
    return (Job.objects.select_related("agent").annotate(version_config=Subquery(version_config, output_field=JSONField()))
            .get(pk=job_id))


@lru_cache(maxsize=1)
def _claim_sql() -> str:
    # written once: the statement is the same for every claim
    q = connection.ops.quote_name
    job_table, agent_table, version_table = q(Job._meta.db_table), q(Agent._meta.db_table), q(AgentVersion._meta.db_table)
    return (
        f"UPDATE {job_table} SET status = %s, started_at = %s, lease_expires_at = %s, attempts = attempts + 1 "
        f"WHERE job_id = %s AND status = %s AND assigned_worker_id = %s "
        f"RETURNING {select_columns(Job, job_table)}, "
        f"(SELECT ROW_TO_JSON(x) FROM (SELECT {select_columns(Agent, 'a')} FROM {agent_table} a "
        f"WHERE a.id = {job_table}.agent_id) x), "
        f"(SELECT v.config FROM {version_table} v WHERE v.agent_id = {job_table}.agent_id AND v.version = {job_table}.agent_version)"
    )


def _claim_returning(job_id: str, worker_id: str, now: datetime, lease: datetime) -> Job | None:
    """UPDATE … RETURNING the row, the agent row and the version config in one statement."""
    sql = _claim_sql()
    with prepared_cursor() as cursor:  # planned once per connection: planning it cost more than running it
        cursor.execute(sql, [JobStatus.RUNNING, now, lease, job_id, JobStatus.ASSIGNED, worker_id])
        row = cursor.fetchone()
    if row is None:
        return None
    n = len(Job._meta.concrete_fields)
    job = model_from_row(Job, row[:n])
    agent_row, config = row[n], row[n + 1]
    if agent_row is not None:
        job.agent = model_from_json_row(Agent, json_value(agent_row))
    job.version_config = json_value(config)  # type: ignore[attr-defined]
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
    finish = job_finish_transition(job_id=job_id, worker_id=worker_id, failure=failure)
    return JOB_MACHINE.try_transition(finish.job, finish.target, from_=finish.from_, where=finish.where, **finish.values)


@dataclass(frozen=True)
class FinishTransition:
    job: Job  # bare: the event says only what the transition filtered on and wrote
    target: str
    from_: tuple[str, ...]
    where: dict[str, Any]
    values: dict[str, Any]


def job_finish_transition(*, job_id: str, worker_id: str, failure: str | None) -> FinishTransition:
    """The transition that records a job's outcome, for `job_finish` and for workers.job_end's
    one-statement end: running → completed / failed, while this worker holds the job."""
    return FinishTransition(
        Job(pk=job_id), JobStatus.FAILED if failure else JobStatus.COMPLETED, (JobStatus.RUNNING,),
        {"assigned_worker_id": worker_id},
        {"completed_at": timezone.now(), "lease_expires_at": None, "failure_reason": (failure or "")[:2000]})


def job_release(*, job_id: str, worker_id: str, reason: str) -> bool:
    """Hand an assigned, not yet started job back to the queue (a draining worker refuses it)."""
    return JOB_MACHINE.try_transition(
        Job(pk=job_id), JobStatus.PENDING, from_=(JobStatus.ASSIGNED,), where={"assigned_worker_id": worker_id},
        reason=reason, assigned_worker=None, assigned_at=None, failure_reason=reason[:2000],
    )
