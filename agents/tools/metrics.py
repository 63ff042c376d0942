"""Per-tool metrics: Prometheus series, plus deltas buffered for the Tool row's counters."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from django.db import close_old_connections
from django.db.models import F
from prometheus_client import Counter, Histogram

from agents.models import Tool

logger = logging.getLogger("agents.tools")

TOOL_CALLS = Counter(
    "controlplane_tool_calls_total", "Tool calls by outcome", ["tool", "outcome"]
)
TOOL_ERRORS = Counter(
    "controlplane_tool_errors_total", "Tool calls that failed (any error kind)", ["tool", "kind"]
)
TOOL_TIMEOUTS = Counter("controlplane_tool_timeouts_total", "Tool calls that timed out", ["tool"])
TOOL_LATENCY = Histogram(
    "controlplane_tool_latency_seconds",
    "Tool call latency, from the call to its result",
    ["tool", "execution"],
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


@dataclass(slots=True)
class StatsDelta:
    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    total_latency_ms: float = 0.0


class StatsBuffer:
    """Counts since the last flush, so the hot path never waits on the database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, StatsDelta] = {}

    def add(self, name: str, *, error: bool, timeout: bool, latency_ms: float) -> None:
        with self._lock:
            d = self._pending.get(name)
            if d is None:
                d = self._pending[name] = StatsDelta()
            d.calls += 1
            d.errors += int(error)
            d.timeouts += int(timeout)
            d.total_latency_ms += latency_ms

    def take(self) -> dict[str, StatsDelta]:
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def pending(self) -> dict[str, StatsDelta]:
        with self._lock:
            return dict(self._pending)


stats_buffer = StatsBuffer()


def record(name: str, *, execution: str, error_kind: str | None, duration_ms: float) -> None:
    TOOL_CALLS.labels(name, error_kind or "ok").inc()
    if error_kind:
        TOOL_ERRORS.labels(name, error_kind).inc()
        if error_kind == "timeout":
            TOOL_TIMEOUTS.labels(name).inc()
    TOOL_LATENCY.labels(name, execution).observe(duration_ms / 1000.0)
    stats_buffer.add(
        name, error=error_kind is not None, timeout=error_kind == "timeout", latency_ms=duration_ms
    )


def flush_stats() -> int:
    """Add buffered counts to the Tool rows (a conditional F() update each). Returns rows."""
    pending = stats_buffer.take()
    updated = 0
    for name, d in pending.items():
        updated += Tool.objects.filter(name=name).update(
            calls=F("calls") + d.calls,
            errors=F("errors") + d.errors,
            timeouts=F("timeouts") + d.timeouts,
            total_latency_ms=F("total_latency_ms") + d.total_latency_ms,
        )
    return updated


class StatsFlusher:
    """A background thread that flushes every `interval` seconds (worker processes)."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="tool-stats-flusher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
            self._thread = None
        self._flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._flush()

    def _flush(self) -> None:
        try:
            flush_stats()
        except Exception:
            logger.exception("could not flush tool stats")
        finally:
            close_old_connections()


stats_flusher = StatsFlusher()
