"""The event sink's shared cycle inserts its SessionEvent rows with one statement, not the ORM.

With hundreds of sessions in a worker process, `SessionEvent(...)` per event (Model.__init__
and its pre_init/post_init signals) plus `bulk_create`'s per-object preparation was most of
the writer's Python time (bench/capacity.py profiles). Here the values go straight into one
multi-row `INSERT … RETURNING id`, and the rows handed on (to the broadcaster and the
stored-events listeners) are built the way the ORM leaves an instance it loaded from the
database: the field values in `__dict__` and a `_state` that is not "adding".

PostgreSQL only (RETURNING); the writer uses it inside its transaction.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models.base import ModelState

from sessions.models import SessionEvent

# rows per statement: bounds the statement's size for a large cycle (one cycle is usually less)
INSERT_CHUNK = 1000

EventValues = tuple[str, int, str, datetime, dict[str, Any]]  # (session_id, seq, type, at, data)


def _statement(count: int) -> str:
    meta = SessionEvent._meta
    columns = ", ".join(f'"{meta.get_field(name).column}"' for name in ("session", "seq", "type", "at", "data"))
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * count)
    pk = meta.pk.column
    session = meta.get_field("session").column
    return (f'INSERT INTO "{meta.db_table}" ({columns}) VALUES {values} '
            f'RETURNING "{pk}", "{session}", "seq"')


def _loaded_row(pk: int, values: EventValues) -> SessionEvent:
    """A SessionEvent as a query would return it, without running Model.__init__."""
    session_id, seq, type_, at, data = values
    row = SessionEvent.__new__(SessionEvent)
    state = ModelState()
    state.adding = False
    state.db = connection.alias
    row._state = state
    row.__dict__.update(id=pk, session_id=session_id, seq=seq, type=type_, at=at, data=data)
    return row


def event_rows_insert(values: Sequence[EventValues]) -> list[SessionEvent]:
    """Insert the rows (in the caller's transaction) and return them, ids set, in input order."""
    data_field = SessionEvent._meta.get_field("data")
    rows: list[SessionEvent] = []
    with connection.cursor() as cursor:
        for start in range(0, len(values), INSERT_CHUNK):
            chunk = values[start:start + INSERT_CHUNK]
            params: list[Any] = []
            for session_id, seq, type_, at, data in chunk:
                # the JSON column's own adapter, as the ORM would send it
                params += (session_id, seq, type_, at, data_field.get_db_prep_save(data, connection))
            cursor.execute(_statement(len(chunk)), params)
            # RETURNING's order is not promised: match the ids by (session, seq), unique per row
            ids = {(session_id, seq): pk for pk, session_id, seq in cursor.fetchall()}
            rows.extend(_loaded_row(ids[(v[0], v[1])], v) for v in chunk)
    return rows
