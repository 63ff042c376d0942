"""Claims and leases: Celery delivers, the database decides who runs a job.

A worker claims an assigned job with one conditional UPDATE (assigned to me → running,
lease set, attempt counted). A duplicate or late delivery finds the claim taken and exits.
While the session runs, the worker's heartbeat renews the lease; a job whose lease
expires is taken back by the reaper.
"""
from __future__ import annotations

from collections.abc import Iterable
import json
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F, JSONField, OuterRef, Subquery
from django.utils import timezone

from agents.models import Agent, AgentVersion
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


def _claim_returning(job_id: str, worker_id: str, now: datetime, lease: datetime) -> Job | None:
    """UPDATE … RETURNING the row, the agent row and the version config in one statement."""
    q = connection.ops.quote_name
    job_table, agent_table, version_table = q(Job._meta.db_table), q(Agent._meta.db_table), q(AgentVersion._meta.db_table)
    job_cols = [f.column for f in Job._meta.concrete_fields]
    agent_cols = [f.column for f in Agent._meta.concrete_fields]
    agent_select = ", ".join(f"a.{q(c)}" for c in agent_cols)
    sql = (
        f"UPDATE {job_table} SET status = %s, started_at = %s, lease_expires_at = %s, attempts = attempts + 1 "
        f"WHERE job_id = %s AND status = %s AND assigned_worker_id = %s "
        f"RETURNING {', '.join(f'{job_table}.{q(c)}' for c in job_cols)}, "
        f"(SELECT ROW_TO_JSON(x) FROM (SELECT {agent_select} FROM {agent_table} a WHERE a.id = {job_table}.agent_id) x), "
        f"(SELECT v.config FROM {version_table} v WHERE v.agent_id = {job_table}.agent_id AND v.version = {job_table}.agent_version)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [JobStatus.RUNNING, now, lease, job_id, JobStatus.ASSIGNED, worker_id])
        row = cursor.fetchone()
    if row is None:
        return None
    n = len(job_cols)
    job = Job.from_db(connection.alias, [f.attname for f in Job._meta.concrete_fields], _convert(Job, row[:n]))
    agent_row, config = row[n], row[n + 1]
    if agent_row is not None:
        agent_row = json.loads(agent_row) if isinstance(agent_row, str) else agent_row
        job.agent = Agent.from_db(connection.alias, [f.attname for f in Agent._meta.concrete_fields],
                                  _convert_json_row(Agent, agent_row))
    job.version_config = json.loads(config) if isinstance(config, str) else config  # type: ignore[attr-defined]
    return job


def _convert(model: type[Any], values: tuple[Any, ...]) -> list[Any]:
    """Apply the fields' from-database converters, as a queryset would."""
    out = []
    for field, value in zip(model._meta.concrete_fields, values):
        for converter in connection.ops.get_db_converters(field) + field.get_db_converters(connection):
            value = converter(value, field, connection)
        out.append(value)
    return out


def _convert_json_row(model: type[Any], row: dict[str, Any]) -> list[Any]:
    """A row that came back as JSON: JSON columns are already values, timestamps are text."""
    out = []
    for field in model._meta.concrete_fields:
        value = row.get(field.column)
        if value is not None and field.get_internal_type() == "DateTimeField":
            value = datetime.fromisoformat(value)
            if timezone.is_naive(value):
                value = timezone.make_aware(value, dt_timezone.utc)
        out.append(value)
    return out


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
    return JOB_MACHINE.try_transition(
        Job(pk=job_id), JobStatus.FAILED if failure else JobStatus.COMPLETED, from_=(JobStatus.RUNNING,),
        where={"assigned_worker_id": worker_id},
        completed_at=timezone.now(), lease_expires_at=None, failure_reason=(failure or "")[:2000],
    )


def job_release(*, job_id: str, worker_id: str, reason: str) -> bool:
    """Hand an assigned, not yet started job back to the queue (a draining worker refuses it)."""
    return JOB_MACHINE.try_transition(
        Job(pk=job_id), JobStatus.PENDING, from_=(JobStatus.ASSIGNED,), where={"assigned_worker_id": worker_id},
        reason=reason, assigned_worker=None, assigned_at=None, failure_reason=reason[:2000],
    )
