"""Fleet events of workers: their status and their circuit breaker.

Job and session events come from their state machines' on-change hooks (see
`controlplane.fleet_events`); a worker's status and circuit are plain conditional updates,
so the code that makes one of those changes reports it with one of these two helpers.
"""
from __future__ import annotations

from controlplane.fleet_events import publish_fleet_event


def worker_status_changed(worker_id: str, status: str, *, reason: str | None = None, capacity: int | None = None) -> None:
    data: dict[str, object] = {"worker_id": worker_id, "status": status}
    if capacity is not None:
        data["capacity"] = capacity
    if reason is not None:
        data["reason"] = reason
    publish_fleet_event("worker", data)


def circuit_changed(worker_id: str, state: str) -> None:
    publish_fleet_event("worker", {"worker_id": worker_id, "circuit_state": state})
