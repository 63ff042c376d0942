"""The cycle collector's settings for a process whose event loop carries live audio.

A collection holds the GIL for as long as it takes, and the session loop's 20 ms frames
wait behind it. In a worker hosting 200 calls (bench/capacity.py, CPython 3.11 defaults
700/10/10, start-up objects frozen) a full collection walked ~100k live objects and held
the loop 55–175 ms (CPU time), eight times in a 70 s run: each one put every caller's frames
that late. Young collections are cheap (about 1 µs per surviving object); what matters is
how many objects reach the old generation and how often it is walked.

- `gc.freeze()` after start-up: modules, settings and pools are never walked again.
- A larger young threshold: most per-frame and per-event objects die before a collection
  sees them, so far fewer are promoted, and the full collections that promotion triggers
  come far less often. The young pause stays bounded by the threshold (a few ms).
- The old-generation rule is left as CPython has it (a full collection once the promoted
  objects exceed a quarter of those already old), so cyclic garbage a finished session
  leaves still goes within a bounded number of collections; memory does not creep.

`GCPauses` records each collection's pause per generation through `gc.callbacks` (for the
benches and the worker's own stats); installing it costs two perf_counter calls a collection.
"""
from __future__ import annotations

import collections
import gc
import threading
import time
from dataclasses import dataclass, field
from typing import Any

YOUNG_THRESHOLD = 5_000  # allocations net of deallocations before a young collection (CPython: 700)
MIDDLE_THRESHOLD = 10  # young collections per middle one (CPython's default)
OLD_THRESHOLD = 10  # middle collections per full one, before the quarter rule (CPython's default)


def tune_for_live_audio() -> None:
    """Freeze what exists now (call once start-up is done) and raise the young threshold."""
    # no gc.collect() first: the loop starts with the first session, and a full collection of
    # start-up's ~270k objects held it ~0.5 s then (bench/capacity.py); frozen garbage is only
    # what start-up left, once
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)


@dataclass
class GenerationPauses:
    collections: int = 0
    total_ms: float = 0.0
    cpu_ms: float = 0.0  # the collecting thread's CPU time: the wall time less the machine's preemption
    max_ms: float = 0.0
    over_20ms: int = 0  # longer than one audio frame

    def as_dict(self) -> dict[str, Any]:
        return {"collections": self.collections, "total_ms": round(self.total_ms, 1), "cpu_ms": round(self.cpu_ms, 1),
                "max_ms": round(self.max_ms, 2), "over_20ms": self.over_20ms}


@dataclass
class GCPauses:
    """Per generation: collections, total and longest pause (wall time, ms)."""

    generations: list[GenerationPauses] = field(default_factory=lambda: [GenerationPauses() for _ in range(3)])
    # the last long pauses (over 20 ms): (time.time() at the end, generation, ms, CPU ms, thread name)
    slow: collections.deque[tuple[float, int, float, float, str]] = field(default_factory=lambda: collections.deque(maxlen=20))
    _started: dict[int, tuple[float, float]] = field(default_factory=dict)  # thread id → (perf_counter, thread_time) at "start"

    def install(self) -> "GCPauses":
        gc.callbacks.append(self._callback)
        return self

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        # a collection runs in whichever thread allocated past the threshold, holding the GIL
        # from "start" to "stop": keyed by thread all the same, so a bug elsewhere cannot pair
        # one thread's start with another's stop
        ident = threading.get_ident()
        if phase == "start":
            self._started[ident] = (time.perf_counter(), time.thread_time())
            return
        began = self._started.pop(ident, None)
        if began is None:
            return
        ms = (time.perf_counter() - began[0]) * 1000
        cpu_ms = (time.thread_time() - began[1]) * 1000
        g = self.generations[min(int(info.get("generation", 2)), 2)]
        g.collections += 1
        g.total_ms += ms
        g.cpu_ms += cpu_ms
        if ms > 20:
            g.over_20ms += 1
            self.slow.append((time.time(), min(int(info.get("generation", 2)), 2), round(ms, 1), round(cpu_ms, 1),
                              threading.current_thread().name))
        if ms > g.max_ms:
            g.max_ms = ms

    def as_dict(self) -> dict[str, Any]:
        return {**{f"gen{i}": g.as_dict() for i, g in enumerate(self.generations)}, "slow": list(self.slow)}
