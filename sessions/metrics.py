"""Prometheus series the sessions count: per-turn latency and outcomes (the plumbing:
controlplane/metrics.py)."""
from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Histogram

from controlplane.metrics import LATENCY_BUCKETS

TURN_LATENCY = Histogram(
    "controlplane_turn_latency_seconds",
    "Per-turn latency breakdown: end_of_utterance, stt, llm_ttft, llm, tts_ttfb, end_to_end",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
SESSIONS_ENDED = Counter("controlplane_sessions_ended_total", "Sessions that ended, by outcome", ["outcome"])
TURN_STAGES = ("end_of_utterance", "stt", "llm_ttft", "llm", "tts_ttfb", "end_to_end")
# the fields of a `metrics_collected` event's TurnMetrics (milliseconds) → stage label
TURN_METRICS_FIELDS = {
    "end_of_utterance_delay_ms": "end_of_utterance",
    "stt_duration_ms": "stt",
    "llm_ttft_ms": "llm_ttft",
    "llm_duration_ms": "llm",
    "tts_ttfb_ms": "tts_ttfb",
    "end_to_end_ms": "end_to_end",
}


def observe_turn_latency(breakdown: Mapping[str, float | None]) -> None:
    """One turn's stage timings in seconds; stages that did not run (None) are skipped."""
    for stage in TURN_STAGES:
        value = breakdown.get(stage)
        if value is not None:
            TURN_LATENCY.labels(stage).observe(max(0.0, value))


def observe_turn_metrics(metrics: Mapping[str, object]) -> None:
    """The `metrics` payload of a `metrics_collected` event (TurnMetrics, in ms)."""
    seconds: dict[str, float | None] = {}
    for field, stage in TURN_METRICS_FIELDS.items():
        value = metrics.get(field)
        seconds[stage] = value / 1000.0 if isinstance(value, int | float) and not isinstance(value, bool) else None
    observe_turn_latency(seconds)
