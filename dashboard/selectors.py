"""Reads for the dashboard pages that span several models."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from agents.models import Agent
from sessions.models import AgentSession, SessionEvent
from workers.models import Job, JobStatus, Worker, WorkerStatus

RECENT_ERRORS = 12


@dataclass(frozen=True)
class WorkerRow:
    worker: Worker
    heartbeat_age_s: float | None
    load_pct: int
    slots_pct: int


def _age(ts: datetime | None, now: datetime) -> float | None:
    return None if ts is None else max(0.0, (now - ts).total_seconds())


def overview(*, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    workers = [
        WorkerRow(
            worker=w,
            heartbeat_age_s=_age(w.last_heartbeat_at, now),
            load_pct=round(min(max(w.load, 0.0), 1.0) * 100),
            slots_pct=round(min(w.active_jobs / w.capacity, 1.0) * 100) if w.capacity else 0,
        )
        for w in Worker.objects.exclude(status=WorkerStatus.OFFLINE, last_heartbeat_at__lt=now - timedelta(hours=1))
    ]
    by_status = dict(Job.objects.values_list("status").annotate(n=Count("job_id")).values_list("status", "n"))
    job_counts = [(status.value, by_status.get(status.value, 0)) for status in JobStatus]
    live = list(AgentSession.objects.live().select_related("agent").order_by("-started_at")[:50])
    online = [r for r in workers if r.worker.status == WorkerStatus.ONLINE]
    return {
        "now": now,
        "workers": workers,
        "job_counts": job_counts,
        "queued": by_status.get(JobStatus.PENDING, 0),
        "capacity": sum(r.worker.capacity for r in online),
        "in_use": sum(r.worker.active_jobs for r in online),
        "live_sessions": live,
        "recent_errors": recent_errors(),
    }


def recent_errors(limit: int = RECENT_ERRORS) -> list[dict[str, Any]]:
    """Session `error` events and failed jobs, newest first."""
    errors: list[dict[str, Any]] = [
        {
            "at": e.at, "session_id": e.session_id, "job_id": None,
            "source": e.data.get("source", "session") if e.type == "error" else "tool",
            "message": e.data.get("message", "") if e.type == "error" else f"{e.data.get('name', 'tool')}: {e.data.get('error', '')}",
        }
        for e in SessionEvent.objects.filter(type__in=("error", "tool_error")).order_by("-at")[:limit]
    ]
    errors += [
        {"at": j.completed_at or j.created_at, "source": "job", "message": j.failure_reason or "failed", "session_id": None, "job_id": j.job_id}
        for j in Job.objects.filter(status=JobStatus.FAILED).order_by("-completed_at")[:limit]
    ]
    errors.sort(key=lambda e: e["at"], reverse=True)
    return errors[:limit]


def agents_with_stats() -> list[Agent]:
    return list(
        Agent.objects.live().annotate(
            session_count=Count("sessions", distinct=True),
            live_count=Count("sessions", filter=Q(sessions__status__in=("initializing", "connected", "active", "paused")), distinct=True),
        )
    )


def session_summary(session: AgentSession) -> dict[str, Any]:
    """What the live page shows before the first event arrives."""
    counts = dict(session.events.values_list("type").annotate(n=Count("id")).values_list("type", "n"))
    return {"event_counts": counts, "tool_calls": counts.get("tool_called", 0), "errors": counts.get("error", 0)}
