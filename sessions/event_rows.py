"""The event sink's shared cycle inserts its SessionEvent rows with one statement, not the ORM.

With hundreds of sessions in a worker process, `SessionEvent(...)` per event (Model.__init__
and its pre_init/post_init signals) plus `bulk_create`'s per-object preparation was about half of
the writer's Python time (bench/capacity.py profiles: bulk_create 3–6 % of the worker's GIL). Here the values go straight into one
`INSERT … SELECT FROM unnest(arrays) RETURNING id`, and the rows handed on (to the broadcaster and the
stored-events listeners) are built the way the ORM leaves an instance it loaded from the
database: the field values in `__dict__` and a `_state` that is not "adding".

PostgreSQL only (unnest, arrays, RETURNING); the writer uses it inside its transaction.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models.base import ModelState

from sessions.models import SessionEvent

EventValues = tuple[str, int, str, datetime, dict[str, Any]]  # (session_id, seq, type, at, data)


def _statement() -> str:
    """One statement whatever the row count: a column per array parameter, unnested. Its text
    never changes, so psycopg parses it once (a VALUES list with a placeholder per value was
    re-split on every cycle: too long for its statement cache)."""
    meta = SessionEvent._meta
    columns = ", ".join(f'"{meta.get_field(name).column}"' for name in ("session", "seq", "type", "at", "data"))
    return (f'INSERT INTO "{meta.db_table}" ({columns}) '
            "SELECT * FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::timestamptz[], %s::jsonb[]) "
            f'RETURNING "{meta.pk.column}", "{meta.get_field("session").column}", "seq"')


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
    if not values:
        return []
    data_field = SessionEvent._meta.get_field("data")
    session_ids, seqs, types, ats, datas = (list(column) for column in zip(*values))
    # the JSON column's own adapter, as the ORM would send it
    datas = [data_field.get_db_prep_save(data, connection) for data in datas]
    with connection.cursor() as cursor:
        cursor.execute(_statement(), [session_ids, seqs, types, ats, datas])
        # RETURNING's order is not promised: match the ids by (session, seq), unique per row
        ids = {(session_id, seq): pk for pk, session_id, seq in cursor.fetchall()}
    return [_loaded_row(ids[(v[0], v[1])], v) for v in values]
