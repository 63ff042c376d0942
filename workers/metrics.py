"""Prometheus series the workers count (the plumbing: controlplane/metrics.py)."""
from __future__ import annotations

from prometheus_client import Histogram

from controlplane.metrics import LATENCY_BUCKETS

DISPATCH_LATENCY = Histogram(
    "controlplane_dispatch_latency_seconds",
    "From a dispatch request accepted by the API to its session started on a worker",
    buckets=LATENCY_BUCKETS,
)


def observe_dispatch_latency(seconds: float) -> None:
    DISPATCH_LATENCY.observe(max(0.0, seconds))
