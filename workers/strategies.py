"""Load-balancing strategies: pick one worker among candidates that have free capacity.

Strategies are pure functions over snapshots, so each choice is testable without a
database. The round-robin cursors are per process (each dispatching process rotates on
its own), guarded by a lock because web and worker threads dispatch concurrently.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

STRATEGIES = ("round_robin", "least_connections", "weighted_round_robin", "load_based")


@dataclass(frozen=True, slots=True)
class Candidate:
    worker_id: str
    capacity: int
    active: int  # assigned + running jobs
    load: float = 0.0  # 0.0 idle … 1.0 saturated, as the worker's heartbeat reports it
    weight: int = 1

    @property
    def free(self) -> int:
        return self.capacity - self.active

    @property
    def utilisation(self) -> float:
        return self.active / self.capacity if self.capacity else 1.0


class RoundRobinState:
    """The cursors the two round-robin strategies keep between choices."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last: str | None = None
        self.current_weights: dict[str, int] = {}


def _with_capacity(candidates: Sequence[Candidate]) -> list[Candidate]:
    return sorted((c for c in candidates if c.free > 0), key=lambda c: c.worker_id)


def round_robin(candidates: Sequence[Candidate], state: RoundRobinState) -> Candidate | None:
    """The next worker after the one chosen last, in worker-id order."""
    ready = _with_capacity(candidates)
    if not ready:
        return None
    with state.lock:
        chosen = next((c for c in ready if state.last is None or c.worker_id > state.last), ready[0])
        state.last = chosen.worker_id
    return chosen


def weighted_round_robin(candidates: Sequence[Candidate], state: RoundRobinState) -> Candidate | None:
    """Smooth weighted round robin (as nginx does): weight 3 vs 1 gives a a b a a a b …"""
    ready = _with_capacity(candidates)
    if not ready:
        return None
    with state.lock:
        weights = state.current_weights
        for stale in set(weights) - {c.worker_id for c in ready}:
            del weights[stale]
        total = sum(max(c.weight, 1) for c in ready)
        for c in ready:
            weights[c.worker_id] = weights.get(c.worker_id, 0) + max(c.weight, 1)
        chosen = max(ready, key=lambda c: (weights[c.worker_id], -ready.index(c)))
        weights[chosen.worker_id] -= total
    return chosen


def least_connections(candidates: Sequence[Candidate], state: RoundRobinState | None = None) -> Candidate | None:
    """Fewest active jobs; ties go to the most free capacity, then the worker id."""
    ready = _with_capacity(candidates)
    if not ready:
        return None
    return min(ready, key=lambda c: (c.active, -c.free, c.worker_id))


def load_based(candidates: Sequence[Candidate], state: RoundRobinState | None = None) -> Candidate | None:
    """Lowest load, where load is the larger of the reported load and the slot utilisation."""
    ready = _with_capacity(candidates)
    if not ready:
        return None
    return min(ready, key=lambda c: (max(c.load, c.utilisation), c.utilisation, c.worker_id))


Strategy = Callable[[Sequence[Candidate], RoundRobinState], Candidate | None]
_BY_NAME: dict[str, Strategy] = {
    "round_robin": round_robin,
    "least_connections": least_connections,
    "weighted_round_robin": weighted_round_robin,
    "load_based": load_based,
}
_states: dict[str, RoundRobinState] = {name: RoundRobinState() for name in STRATEGIES}


def choose(name: str, candidates: Sequence[Candidate]) -> Candidate | None:
    try:
        strategy = _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown dispatch strategy {name!r}; choose one of {', '.join(STRATEGIES)}") from None
    return strategy(candidates, _states[name])
