"""Prometheus metrics of the control plane.

Two kinds:
- State (jobs by status, queue depth, workers, load, live sessions, desired capacity) is
  read from the database at scrape time by `StateCollector`, so every web process answers
  the same numbers whatever process changed the state.
- Events (dispatch latency, per-turn latency, session outcomes) are histograms/counters
  updated where they happen, in whichever process; with PROMETHEUS_MULTIPROC_DIR set,
  prometheus_client writes them to per-process files and `/metrics` merges those.
Tool metrics are defined by the tools package (agents/tools/metrics.py).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

import agents.tools.metrics  # noqa: F401 - registers the tool-call series
from controlplane.prometheus_files import multiprocess_dir

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30)

DISPATCH_LATENCY = Histogram(
    "controlplane_dispatch_latency_seconds",
    "From a dispatch request accepted by the API to its session started on a worker",
    buckets=_LATENCY_BUCKETS,
)
TURN_LATENCY = Histogram(
    "controlplane_turn_latency_seconds",
    "Per-turn latency breakdown: end_of_utterance, stt, llm_ttft, llm, tts_ttfb, end_to_end",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
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


def observe_dispatch_latency(seconds: float) -> None:
    DISPATCH_LATENCY.observe(max(0.0, seconds))


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


class StateCollector(Collector):
    """Gauges computed from the database at scrape time (correct across processes)."""

    def collect(self) -> Iterator[Metric]:
        from controlplane import selectors

        up = GaugeMetricFamily("controlplane_state_scrape_ok", "1 when the state gauges could be read from the database")
        try:
            jobs = selectors.jobs_by_status()
            queue = selectors.queue_overview()
            workers = selectors.workers_overview()
            workers_by_status = selectors.workers_by_status()
            sessions = selectors.sessions_by_status()
            capacity_figures = selectors.fleet_capacity()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database does
            log.warning("could not read state metrics", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        finally:
            from django.db import close_old_connections

            close_old_connections()
        up.add_metric([], 1)
        yield up

        g = GaugeMetricFamily("controlplane_jobs", "Jobs by status", labels=["status"])
        for status, n in jobs.items():
            g.add_metric([status], n)
        yield g
        g = GaugeMetricFamily("controlplane_job_queue_depth", "Pending jobs waiting for a worker")
        g.add_metric([], queue["depth"])
        yield g
        g = GaugeMetricFamily("controlplane_job_queue_limit", "Pending jobs past which dispatch answers 429")
        g.add_metric([], queue["limit"])
        yield g
        g = GaugeMetricFamily("controlplane_job_queue_oldest_age_seconds", "Age of the oldest pending job")
        g.add_metric([], queue["oldest_pending_age_seconds"] or 0.0)
        yield g
        g = GaugeMetricFamily("controlplane_workers", "Workers by status", labels=["status"])
        for status, n in workers_by_status.items():
            g.add_metric([status], n)
        yield g
        load = GaugeMetricFamily("controlplane_worker_load", "Worker load, 0.0 idle … 1.0 saturated", labels=["worker"])
        active = GaugeMetricFamily("controlplane_worker_active_jobs", "Jobs a worker reports running", labels=["worker"])
        capacity = GaugeMetricFamily("controlplane_worker_capacity", "Sessions a worker can host", labels=["worker"])
        for w in workers:
            load.add_metric([w["worker_id"]], w["load"])
            active.add_metric([w["worker_id"]], w["active_jobs"])
            capacity.add_metric([w["worker_id"]], w["capacity"])
        yield load
        yield active
        yield capacity
        g = GaugeMetricFamily("controlplane_sessions", "Sessions by status", labels=["status"])
        for status, n in sessions.items():
            g.add_metric([status], n)
        yield g
        g = GaugeMetricFamily("controlplane_active_sessions", "Sessions currently live (initializing, connected, active, paused)")
        g.add_metric([], sum(sessions[s] for s in ("initializing", "connected", "active", "paused")))
        yield g
        g = GaugeMetricFamily("controlplane_fleet_capacity", "Session slots of the online workers")
        g.add_metric([], capacity_figures["capacity"])
        yield g
        g = GaugeMetricFamily("controlplane_desired_capacity", "Session slots the fleet should have for its queue and load")
        g.add_metric([], capacity_figures["desired_capacity"])
        yield g


def render_latest() -> bytes:
    """The Prometheus text exposition for /metrics."""
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector())
    path = multiprocess_dir()
    if path:
        events = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(events, path=path)
    else:
        events = REGISTRY
    return generate_latest(events) + generate_latest(state)
