"""Prometheus plumbing the apps share; each app defines the series it counts.

- Event series (histograms/counters) are updated where things happen, in whichever
  process: dispatch latency in `workers/metrics.py`, per-turn latency and session outcomes
  in `sessions/metrics.py`, tool calls in `agents/tools/metrics.py`. With
  PROMETHEUS_MULTIPROC_DIR set, prometheus_client writes them to per-process files
  (named by `controlplane/prometheus_files.py`) and `event_registry()` merges those.
- State gauges are read from the database at scrape time by the roof (`server/metrics.py`),
  so every web process answers the same numbers whatever process changed the state.
"""
from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from controlplane.prometheus_files import multiprocess_dir

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30)


def event_registry() -> CollectorRegistry:
    """Every process's event series in multiprocess mode, else this process's own."""
    path = multiprocess_dir()
    if not path:
        return REGISTRY
    merged = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(merged, path=path)
    return merged
