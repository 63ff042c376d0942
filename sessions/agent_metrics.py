"""`Agent.metrics`: what an agent's sessions add up to, recomputed when one of them ends.

Calls, minutes, ended/errored sessions and error rate come from the session rows; latency
percentiles from the per-turn `metrics_collected` events of the agent's latest turns (so a
busy agent's figures describe its recent calls). One aggregate query and one bounded event
query per recompute: no counter to drift, and re-running it is harmless.

Session ends of one agent are coalesced per process (`agent_metrics_request`): while a
recompute of an agent runs, further ends of that agent only mark it stale, and the running
recompute goes round once more when it is done. A lone end still refreshes at once, in the
thread that ended the session; a burst of N concurrent ends costs a few recomputes, not N,
and the last one starts after the last end was committed, so the stored figures end up the
same as a recompute after every end.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone

from agents.models import Agent
from sessions.live_state import latency_summary
from sessions.models import LIVE_SESSION_STATUSES, AgentSession, SessionEvent, SessionStatus

log = logging.getLogger(__name__)
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
    duration = ExpressionWrapper(F("ended_at") - F("started_at"), output_field=DurationField())
    ended = ~Q(status__in=LIVE_SESSION_STATUSES)
    # one pass over the agent's rows for the ended figures and the live count
    totals = AgentSession.objects.filter(agent_id=agent_pk).aggregate(
        calls=Count("pk", filter=ended), errors=Count("pk", filter=ended & Q(status=SessionStatus.ERROR)),
        time=Sum(duration, filter=ended & Q(ended_at__isnull=False)),
        live=Count("pk", filter=Q(status__in=LIVE_SESSION_STATUSES)),
    )
    calls, errors = totals["calls"] or 0, totals["errors"] or 0
    latency = _latency(agent_pk)
    metrics: dict[str, Any] = {
        "calls": calls,
        "minutes": round(totals["time"].total_seconds() / 60, 2) if totals["time"] else 0.0,
        "errors": errors,
        "error_rate": round(errors / calls, 4) if calls else 0.0,
        "live_sessions": totals["live"] or 0,
        "latency_ms": latency,
        "latency_p50_ms": latency.get("end_to_end", {}).get("p50"),
        "latency_p95_ms": latency.get("end_to_end", {}).get("p95"),
        "updated_at": timezone.now().isoformat().replace("+00:00", "Z"),
    }
    Agent.objects.filter(pk=agent_pk).update(metrics=metrics)
    return metrics


_lock = threading.Lock()
_running: dict[int, bool] = {}  # agent pk → stale since its running recompute began


def agent_metrics_request(*, agent_pk: int) -> bool:
    """A session of the agent ended (and is committed): recompute its metrics here, or, when
    a recompute of that agent already runs in this process, have it go round once more.
    Returns whether this call did the recompute(s). Never raises: figures are recomputed at
    the next end."""
    with _lock:
        if agent_pk in _running:
            _running[agent_pk] = True
            return False
        _running[agent_pk] = False
    try:
        while True:
            try:
                agent_metrics_refresh(agent_pk=agent_pk)
            except Exception:  # noqa: BLE001 - figures are recomputed at the next session end
                log.warning("metrics of agent %s not refreshed", agent_pk, exc_info=True)
            with _lock:
                if not _running[agent_pk]:
                    del _running[agent_pk]
                    return True
                _running[agent_pk] = False
    except BaseException:
        with _lock:
            _running.pop(agent_pk, None)
        raise
