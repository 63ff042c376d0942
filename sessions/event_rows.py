"""SessionEvent rows written with one statement, not the ORM: the event sink's shared cycle
(`event_rows_insert`) and one session's append with its seqs (`events_append_returning`).

With hundreds of sessions in a worker process, `SessionEvent(...)` per event (Model.__init__
and its pre_init/post_init signals) plus `bulk_create`'s per-object preparation was about half of
the writer's Python time (bench/capacity.py profiles: bulk_create 3–6 % of the worker's GIL). Here the values go straight into one
`INSERT … SELECT FROM jsonb_to_recordset(one JSON text) RETURNING id`, and the rows handed on (to the broadcaster and the
stored-events listeners) are built the way the ORM leaves an instance it loaded from the
database: the field values in `__dict__` and a `_state` that is not "adding".

A session's append (`sessions.services.session_events_append`) through the ORM was a
transaction of five statements (SAVEPOINT, UPDATE, SELECT the counter back, INSERT, RELEASE)
plus BEGIN/COMMIT, three times per short call on the worker. `events_append_returning` is one
`WITH bumped AS (UPDATE … RETURNING last_seq) INSERT … SELECT FROM bumped, jsonb_array_elements(…)`: a
single statement is atomic on its own, and the UPDATE still takes the session row's lock, so
concurrent writers of one session are serialised and seqs stay gap-free.

PostgreSQL only (jsonb_to_recordset, jsonb_array_elements, RETURNING); the writer uses it inside its transaction.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import connection
from django.db.models.base import ModelState
from django.utils import timezone

from controlplane.prepared_statements import prepared_cursor
from sessions.models import AgentSession, SessionEvent

EventValues = tuple[str, int, str, datetime, dict[str, Any]]  # (session_id, seq, type, at, data)
Pending = tuple[str, datetime, dict[str, Any]]  # (type, at, data): an event before its seq


def _columns() -> str:
    meta = SessionEvent._meta
    return ", ".join(f'"{meta.get_field(name).column}"' for name in ("session", "seq", "type", "at", "data"))


@lru_cache(maxsize=1)
def _statement() -> str:
    """One statement whatever the row count, its rows in ONE jsonb parameter (an array of
    `{s, q, t, a, d}` objects) that PostgreSQL turns back into columns. Its text never
    changes, so psycopg parses it once. Not an array parameter per column: psycopg quotes
    arrays element by element in Python (every event's JSON escaped again inside a jsonb[]
    literal), the largest share of the writer's time at hundreds of calls; one JSON text is
    encoded by the json module's C encoder and quoted once."""
    meta = SessionEvent._meta
    return (f'INSERT INTO "{meta.db_table}" ({_columns()}) '
            "SELECT r.s, r.q, r.t, r.a, r.d FROM jsonb_to_recordset(%s::jsonb) "
            "AS r(s text, q bigint, t text, a timestamptz, d jsonb) "
            f'RETURNING "{meta.pk.column}", "{meta.get_field("session").column}", "seq"')


def _rows_json(values: Sequence[EventValues]) -> str:
    """The rows as the statement's one parameter; `data` encoded as the JSON column's own
    adapter would (json.dumps with the field's encoder, if it has one)."""
    encoder = SessionEvent._meta.get_field("data").encoder
    return json.dumps([{"s": session_id, "q": seq, "t": type_, "a": at.isoformat(), "d": data}
                       for session_id, seq, type_, at, data in values], cls=encoder)


def _loaded_row(pk: int, values: EventValues, db: str) -> SessionEvent:
    """A SessionEvent as a query would return it, without running Model.__init__. `db` is the
    connection's alias, read once per statement by the caller (django.db.connection is a
    thread-local proxy: a lookup per row was a tenth of the writer's time at 400 calls)."""
    session_id, seq, type_, at, data = values
    row = SessionEvent.__new__(SessionEvent)
    state = ModelState()
    state.adding = False
    state.db = db
    row._state = state
    row.__dict__.update(id=pk, session_id=session_id, seq=seq, type=type_, at=at, data=data)
    return row


def event_rows_insert(values: Sequence[EventValues]) -> list[SessionEvent]:
    """Insert the rows (in the caller's transaction) and return them, ids set, in input order."""
    if not values:
        return []
    with prepared_cursor() as cursor:
        cursor.execute(_statement(), [_rows_json(values)])
        # RETURNING's order is not promised: match the ids by (session, seq), unique per row
        ids = {(session_id, seq): pk for pk, session_id, seq in cursor.fetchall()}
    db = connection.alias
    return [_loaded_row(ids[(v[0], v[1])], v, db) for v in values]


@lru_cache(maxsize=1)
def _append_statement() -> str:
    """The bump and the INSERT in one statement; the events in ONE jsonb parameter (an array
    of `{t, a, d}` objects, its order the seqs'), as `_statement` takes them and for its
    reason: three array parameters (types, times, data) were dumped element by element by
    psycopg's Python ListDumper, and a one-event append cost ~40 % more CPU (three a job)."""
    q = connection.ops.quote_name
    session, event = AgentSession._meta, SessionEvent._meta
    return (f"WITH bumped AS (UPDATE {q(session.db_table)} SET last_seq = last_seq + %(n)s, last_activity_at = %(now)s "
            f"WHERE {q(session.pk.column)} = %(session)s RETURNING last_seq) "
            f"INSERT INTO {q(event.db_table)} ({_columns()}) "
            f"SELECT %(session)s, bumped.last_seq - %(n)s + e.ord, e.r ->> 't', (e.r ->> 'a')::timestamptz, e.r -> 'd' "
            f"FROM bumped, jsonb_array_elements(%(events)s::jsonb) WITH ORDINALITY AS e(r, ord) "
            f"RETURNING {q(event.pk.column)}, seq")


def _events_json(events: Sequence[Pending]) -> str:
    """The events as the append's one parameter, `data` encoded as `_rows_json` encodes it."""
    encoder = SessionEvent._meta.get_field("data").encoder
    return json.dumps([{"t": type_, "a": at.isoformat(), "d": data} for type_, at, data in events], cls=encoder)


def events_append_returning(*, session_id: str, events: Sequence[Pending]) -> list[SessionEvent]:
    """Store `events` with the session's next seqs in one statement; the rows in input order.
    Raises AgentSession.DoesNotExist when the session has no row (as the ORM path)."""
    params = {"n": len(events), "now": timezone.now(), "session": session_id, "events": _events_json(events)}
    with prepared_cursor() as cursor:  # planned once per connection: three times per short call
        cursor.execute(_append_statement(), params)
        ids = {seq: pk for pk, seq in cursor.fetchall()}
    if not ids:
        raise AgentSession.DoesNotExist(f"no session row {session_id}")
    first, db = min(ids), connection.alias
    return [_loaded_row(ids[first + i], (session_id, first + i, type_, at, data), db)
            for i, (type_, at, data) in enumerate(events)]


# --- the live state of many sessions in one UPDATE ---------------------------------------------
_LIVE_TEXT_FIELDS = ("agent_state", "user_state")
_LIVE_JSON_FIELDS = ("audio_state", "metrics", "conversation_state")


@lru_cache(maxsize=1)
def _live_statement() -> str:
    """Each session's changed live columns from one jsonb parameter (`[{id, f: {field: value}}]`):
    a column a session's `f` lacks keeps its value, as `QuerySet.update(**fields)` leaves it."""
    q = connection.ops.quote_name
    meta = AgentSession._meta
    sets = []
    for name, op in [*((n, "->>") for n in _LIVE_TEXT_FIELDS), *((n, "->") for n in _LIVE_JSON_FIELDS)]:
        column = q(meta.get_field(name).column)
        sets.append(f"{column} = CASE WHEN v.f ? '{name}' THEN v.f {op} '{name}' ELSE s.{column} END")
    return (f"UPDATE {q(meta.db_table)} AS s SET {', '.join(sets)} "
            f"FROM jsonb_to_recordset(%s::jsonb) AS v(id text, f jsonb) WHERE s.{q(meta.pk.column)} = v.id")


def live_states_write(states: dict[str, dict[str, Any]]) -> None:
    """`session_live_state_write` for many sessions (session id → its changed live fields), in
    the caller's transaction: the event sink's shared cycle wrote one ORM UPDATE per session
    and second, the writer's largest statement count at hundreds of calls."""
    if not states:
        return
    known = {*_LIVE_TEXT_FIELDS, *_LIVE_JSON_FIELDS}
    for fields in states.values():
        unknown = set(fields) - known
        if unknown:
            raise ValueError(f"not live-state fields: {', '.join(sorted(unknown))}")
    # the JSON columns' own adapter is plain json.dumps (no encoder): the text sent is the same
    assert all(AgentSession._meta.get_field(name).encoder is None for name in _LIVE_JSON_FIELDS)
    payload = json.dumps([{"id": session_id, "f": fields} for session_id, fields in states.items()])
    with prepared_cursor() as cursor:
        cursor.execute(_live_statement(), [payload])
