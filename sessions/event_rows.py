"""SessionEvent rows written with one statement, not the ORM: the event sink's shared cycle
(`event_rows_insert`) and one session's append with its seqs (`events_append_returning`).

With hundreds of sessions in a worker process, `SessionEvent(...)` per event (Model.__init__
and its pre_init/post_init signals) plus `bulk_create`'s per-object preparation was about half of
the writer's Python time (bench/capacity.py profiles: bulk_create 3–6 % of the worker's GIL). Here the values go straight into one
`INSERT … SELECT FROM unnest(arrays) RETURNING id`, and the rows handed on (to the broadcaster and the
stored-events listeners) are built the way the ORM leaves an instance it loaded from the
database: the field values in `__dict__` and a `_state` that is not "adding".

A session's append (`sessions.services.session_events_append`) through the ORM was a
transaction of five statements (SAVEPOINT, UPDATE, SELECT the counter back, INSERT, RELEASE)
plus BEGIN/COMMIT, three times per short call on the worker. `events_append_returning` is one
`WITH bumped AS (UPDATE … RETURNING last_seq) INSERT … SELECT FROM bumped, unnest(…)`: a
single statement is atomic on its own, and the UPDATE still takes the session row's lock, so
concurrent writers of one session are serialised and seqs stay gap-free.

PostgreSQL only (unnest, arrays, RETURNING); the writer uses it inside its transaction.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import connection
from django.db.models.base import ModelState
from django.utils import timezone

from sessions.models import AgentSession, SessionEvent

EventValues = tuple[str, int, str, datetime, dict[str, Any]]  # (session_id, seq, type, at, data)
Pending = tuple[str, datetime, dict[str, Any]]  # (type, at, data): an event before its seq


def _columns() -> str:
    meta = SessionEvent._meta
    return ", ".join(f'"{meta.get_field(name).column}"' for name in ("session", "seq", "type", "at", "data"))


def _prepared_data(datas: Sequence[dict[str, Any]]) -> list[Any]:
    """The JSON column's own adapter, as the ORM would send it."""
    data_field = SessionEvent._meta.get_field("data")
    return [data_field.get_db_prep_save(data, connection) for data in datas]


def _statement() -> str:
    """One statement whatever the row count: a column per array parameter, unnested. Its text
    never changes, so psycopg parses it once (a VALUES list with a placeholder per value was
    re-split on every cycle: too long for its statement cache)."""
    meta = SessionEvent._meta
    return (f'INSERT INTO "{meta.db_table}" ({_columns()}) '
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
    session_ids, seqs, types, ats, datas = (list(column) for column in zip(*values))
    with connection.cursor() as cursor:
        cursor.execute(_statement(), [session_ids, seqs, types, ats, _prepared_data(datas)])
        # RETURNING's order is not promised: match the ids by (session, seq), unique per row
        ids = {(session_id, seq): pk for pk, session_id, seq in cursor.fetchall()}
    return [_loaded_row(ids[(v[0], v[1])], v) for v in values]


@lru_cache(maxsize=1)
def _append_statement() -> str:
    q = connection.ops.quote_name
    session, event = AgentSession._meta, SessionEvent._meta
    return (f"WITH bumped AS (UPDATE {q(session.db_table)} SET last_seq = last_seq + %(n)s, last_activity_at = %(now)s "
            f"WHERE {q(session.pk.column)} = %(session)s RETURNING last_seq) "
            f"INSERT INTO {q(event.db_table)} ({_columns()}) "
            f"SELECT %(session)s, bumped.last_seq - %(n)s + e.ord, e.type, e.at, e.data FROM bumped, "
            f"unnest(%(types)s::text[], %(ats)s::timestamptz[], %(datas)s::jsonb[]) WITH ORDINALITY AS e(type, at, data, ord) "
            f"RETURNING {q(event.pk.column)}, seq")


def events_append_returning(*, session_id: str, events: Sequence[Pending]) -> list[SessionEvent]:
    """Store `events` with the session's next seqs in one statement; the rows in input order.
    Raises AgentSession.DoesNotExist when the session has no row (as the ORM path)."""
    params = {"n": len(events), "now": timezone.now(), "session": session_id,
              "types": [type_ for type_, _, _ in events], "ats": [at for _, at, _ in events],
              "datas": _prepared_data([data for _, _, data in events])}
    with connection.cursor() as cursor:
        cursor.execute(_append_statement(), params)
        ids = {seq: pk for pk, seq in cursor.fetchall()}
    if not ids:
        raise AgentSession.DoesNotExist(f"no session row {session_id}")
    first = min(ids)
    return [_loaded_row(ids[first + i], (session_id, first + i, type_, at, data))
            for i, (type_, at, data) in enumerate(events)]
