"""Fleet figures read across jobs, workers and sessions: for /status, the /metrics state gauges."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone

from sessions.models import AgentSession, SessionStatus
from workers.autoscale import fleet_capacity as _fleet_capacity
from workers.models import Job, JobStatus, Worker, WorkerStatus


def jobs_by_status() -> dict[str, int]:
    counts = dict.fromkeys(JobStatus.values, 0)
    for row in Job.objects.order_by().values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts


def sessions_by_status() -> dict[str, int]:
    counts = dict.fromkeys(SessionStatus.values, 0)
    for row in AgentSession.objects.order_by().values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts


def queue_overview() -> dict[str, Any]:
    pending = Job.objects.pending()
    by_priority = {
        str(row["priority"]): row["n"] for row in pending.order_by().values("priority").annotate(n=Count("pk")).order_by("priority")
    }
    oldest = pending.aggregate(oldest=Min("created_at"))["oldest"]
    depth = sum(by_priority.values())
    return {
        "depth": depth,
        "limit": settings.JOB_QUEUE_LIMIT,
        "by_priority": by_priority,
        "oldest_pending_age_seconds": round((timezone.now() - oldest).total_seconds(), 3) if oldest else None,
    }


def workers_overview() -> list[dict[str, Any]]:
    rows = Worker.objects.exclude(status=WorkerStatus.OFFLINE).order_by("worker_id").values(
        "worker_id", "hostname", "worker_type", "region", "version", "status", "capacity", "weight", "load",
        "active_jobs", "circuit_state", "consecutive_failures", "last_heartbeat_at",
    )
    return list(rows)


def workers_by_status() -> dict[str, int]:
    counts = dict.fromkeys(WorkerStatus.values, 0)
    for row in Worker.objects.order_by().values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts


def fleet_capacity() -> dict[str, Any]:
    """Capacity, demand and the desired capacity the scaler aims for (workers.autoscale)."""
    return _fleet_capacity()
