"""What a worker node's own `/metrics` (its health server) shows: this process only.

The series this process updates (per-turn latency, session outcomes, tool calls …) read
from its in-process registry, plus a few gauges of the node itself. The web's `/metrics`
sums every process's files in PROMETHEUS_MULTIPROC_DIR and adds the fleet state from the
database; scrape one or the other for totals, or both to see them per node (then sum by
the web's job only, or totals count twice).
"""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import agents.tools.metrics  # noqa: F401 - the event series this process updates: tool calls,
import sessions.metrics  # noqa: F401 - turn latency and session outcomes,
import workers.metrics  # noqa: F401 - dispatch latency
from workers.node import node


class NodeCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        labels = ["worker"]
        worker = [node.worker_id or "unregistered"]
        capacity = node.options.max_concurrent_jobs if node.options is not None else 0
        for name, doc, value in (
            ("controlplane_node_active_sessions", "Sessions this worker process hosts now", node.active_jobs),
            ("controlplane_node_capacity", "Sessions this worker process may host", capacity),
            ("controlplane_node_draining", "1 while this worker process drains", int(node.draining)),
        ):
            g = GaugeMetricFamily(name, doc, labels=labels)
            g.add_metric(worker, value)
            yield g


def render_node_metrics() -> bytes:
    own = CollectorRegistry(auto_describe=False)
    own.register(NodeCollector())
    return generate_latest(REGISTRY) + generate_latest(own)
