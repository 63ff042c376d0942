"""What /metrics serves: every app's event series plus the fleet state read at scrape time.

The series are defined by the apps that count them (see controlplane/metrics.py); importing
their modules here registers them, so a scrape lists each series even before its first
observation. The state gauges (jobs by status, queue depth, workers, load, live sessions,
desired capacity) are read from the database by `StateCollector`, so every web process
answers the same numbers whatever process changed the state.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import close_old_connections
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import agents.tools.metrics  # noqa: F401 - registers the tool-call series
import sessions.metrics  # noqa: F401 - registers the turn-latency and session-outcome series
import workers.metrics  # noqa: F401 - registers the dispatch-latency series
from controlplane.metrics import event_registry
from dashboard import fleet

log = logging.getLogger(__name__)


class StateCollector(Collector):
    """Gauges computed from the database at scrape time (correct across processes)."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("controlplane_state_scrape_ok", "1 when the state gauges could be read from the database")
        try:
            jobs = fleet.jobs_by_status()
            queue = fleet.queue_overview()
            workers = fleet.workers_overview()
            workers_by_status = fleet.workers_by_status()
            sessions = fleet.sessions_by_status()
            capacity_figures = fleet.fleet_capacity()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database does
            log.warning("could not read state metrics", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        finally:
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
    return generate_latest(event_registry()) + generate_latest(state)
