"""Fleet status changes (jobs, workers, sessions) broadcast to `/ws/fleet/` listeners.

Job and session events come from their state machines: `FleetEvents` is the on-change hook
each machine is built with, so a transition publishes its event and no caller builds one.
Worker status and circuit changes, which no machine makes, publish through the helpers in
`workers.events`. Everything goes out on the process's one broadcaster, in order, without
waiting; best effort (the database is the record, this is the live view).

Channel-layer message (consumed by `sessions.consumers.FleetConsumer`):
`{"type": "fleet.event", "kind": "job" | "worker" | "session", "at": iso, "data": {id, status, ...}}`.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import models
from django.utils import timezone

from controlplane.broadcaster import broadcaster

FLEET_GROUP = "fleet"


def fleet_message(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "fleet.event", "kind": kind, "at": timezone.now().isoformat(), "data": data}


_batch = threading.local()


def publish_fleet_event(kind: str, data: dict[str, Any]) -> None:
    """kind is job / worker / session; data holds at least the id and the new status."""
    message = (FLEET_GROUP, fleet_message(kind, data))
    pending: list[Any] | None = getattr(_batch, "messages", None)
    if pending is not None:
        pending.append(message)
        return
    broadcaster.send([message])


@contextmanager
def fleet_events_together() -> Iterator[None]:
    """The fleet events this thread publishes inside go out as one broadcaster hand-over (one
    channel-layer round instead of one each), in order, when the block ends, even by an
    exception. For changes one statement made together (workers.job_end: a circuit closed, a
    job finished, the next one assigned)."""
    if getattr(_batch, "messages", None) is not None:  # nested: the outer block sends them
        yield
        return
    _batch.messages = []
    try:
        yield
    finally:
        messages, _batch.messages = _batch.messages, None
        if messages:
            broadcaster.send(messages)


def flush_fleet_events(timeout: float = 5.0) -> bool:
    """Wait until every event published so far has been broadcast (tests, shutdown)."""
    return broadcaster.flush(timeout)


class FleetEvents:
    """A state machine's on-change hook: publish `{id_key: pk, "status": …, …}`.

    `fields` (event key → model attribute) describe the row: a row read from the database
    knows them all; a bare instance (`Job(pk=…)`, made to move a row by id without reading it)
    knows only what the transition filtered on or wrote, so only those go out, never a
    default value. `written` keys (event key → attributes, first match wins) go out only when
    the change wrote one of those attributes: what it records, such as a failure reason. The
    caller's own `reason`, when it gives one, is the event's `reason`.
    """

    def __init__(self, kind: str, id_key: str, fields: Mapping[str, str],
                 written: Mapping[str, Sequence[str]] | None = None) -> None:
        self.kind = kind
        self.id_key = id_key
        self.fields = dict(fields)
        self.written = {key: tuple(attrs) for key, attrs in (written or {}).items()}

    def __call__(self, obj: models.Model, status: str, known: Mapping[str, Any], reason: str | None) -> None:
        data: dict[str, Any] = {self.id_key: obj.pk, "status": status}
        loaded = not obj._state.adding
        for key, attr in self.fields.items():
            if loaded:
                data[key] = getattr(obj, attr)
            elif attr in known:
                data[key] = known[attr]
        for key, attrs in self.written.items():
            attr = next((a for a in attrs if a in known), None)
            if attr is not None:
                data[key] = known[attr]
        if reason is not None:
            data["reason"] = reason
        publish_fleet_event(self.kind, data)
