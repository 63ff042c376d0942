"""`Agent.metrics`: what an agent's sessions add up to, recomputed when one of them ends.

Calls, minutes, ended/errored sessions and error rate come from the session rows; latency
percentiles from the per-turn `metrics_collected` events of the agent's latest turns (so a
busy agent's figures describe its recent calls). One aggregate query and one bounded event
query per session end: no counter to drift, and re-running it is harmless.
"""
from __future__ import annotations

from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone

from agents.models import Agent
from sessions.live_state import latency_summary
from sessions.models import LIVE_SESSION_STATUSES, AgentSession, SessionEvent, SessionStatus

LATENCY_TURNS = 1000
# TurnMetrics fields summarised per agent
AGENT_STAGES = {"end_to_end_ms": "end_to_end", "llm_ttft_ms": "llm_ttft", "tts_ttfb_ms": "tts_ttfb",
                "stt_duration_ms": "stt"}


def _latency(agent_pk: int) -> dict[str, Any]:
    recent = (SessionEvent.objects.filter(session__agent_id=agent_pk, type="metrics_collected")
              .order_by("-at").values_list("data", flat=True)[:LATENCY_TURNS])
    samples: dict[str, list[float]] = {stage: [] for stage in AGENT_STAGES.values()}
    for data in recent:
        metrics = (data or {}).get("metrics") or {}
        for field, stage in AGENT_STAGES.items():
            value = metrics.get(field)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                samples[stage].append(float(value))
    return {stage: latency_summary(values) for stage, values in samples.items() if values}


def agent_metrics_refresh(*, agent_pk: int) -> dict[str, Any]:
    """Recompute and store one agent's metrics; returns them."""
    ended = AgentSession.objects.filter(agent_id=agent_pk).exclude(status__in=LIVE_SESSION_STATUSES)
    duration = ExpressionWrapper(F("ended_at") - F("started_at"), output_field=DurationField())
    totals = ended.aggregate(
        calls=Count("pk"), errors=Count("pk", filter=Q(status=SessionStatus.ERROR)),
        time=Sum(duration, filter=Q(ended_at__isnull=False)),
    )
    calls, errors = totals["calls"] or 0, totals["errors"] or 0
    latency = _latency(agent_pk)
    metrics: dict[str, Any] = {
        "calls": calls,
        "minutes": round(totals["time"].total_seconds() / 60, 2) if totals["time"] else 0.0,
        "errors": errors,
        "error_rate": round(errors / calls, 4) if calls else 0.0,
        "live_sessions": AgentSession.objects.filter(agent_id=agent_pk, status__in=LIVE_SESSION_STATUSES).count(),
        "latency_ms": latency,
        "latency_p50_ms": latency.get("end_to_end", {}).get("p50"),
        "latency_p95_ms": latency.get("end_to_end", {}).get("p95"),
        "updated_at": timezone.now().isoformat().replace("+00:00", "Z"),
    }
    Agent.objects.filter(pk=agent_pk).update(metrics=metrics)
    return metrics
