"""A session's events appended with one statement on PostgreSQL: seqs and rows together.

`session_events_append` bumps the session's seq counter and inserts the events. Through the
ORM that was a transaction of five statements (SAVEPOINT, UPDATE, SELECT the counter back,
INSERT, RELEASE) plus BEGIN/COMMIT, three times per short call on the worker. Here one
`WITH bumped AS (UPDATE … RETURNING last_seq) INSERT … SELECT FROM bumped, unnest(…)`
does it: a single statement is atomic on its own, and the UPDATE still takes the session
row's lock, so concurrent writers of one session are serialised and seqs stay gap-free.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import connection
from django.utils import timezone

from sessions.event_rows import _loaded_row
from sessions.models import AgentSession, SessionEvent

Pending = tuple[str, datetime, dict[str, Any]]  # (type, at, data)


@lru_cache(maxsize=1)
def _statement() -> str:
    q = connection.ops.quote_name
    session, event = AgentSession._meta, SessionEvent._meta
    columns = ", ".join(q(event.get_field(name).column) for name in ("session", "seq", "type", "at", "data"))
    return (f"WITH bumped AS (UPDATE {q(session.db_table)} SET last_seq = last_seq + %(n)s, last_activity_at = %(now)s "
            f"WHERE {q(session.pk.column)} = %(session)s RETURNING last_seq) "
            f"INSERT INTO {q(event.db_table)} ({columns}) "
            f"SELECT %(session)s, bumped.last_seq - %(n)s + e.ord, e.type, e.at, e.data FROM bumped, "
            f"unnest(%(types)s::text[], %(ats)s::timestamptz[], %(datas)s::jsonb[]) WITH ORDINALITY AS e(type, at, data, ord) "
            f"RETURNING {q(event.pk.column)}, seq")


def events_append_returning(*, session_id: str, events: Sequence[Pending]) -> list[SessionEvent]:
    """PostgreSQL: store `events` with the session's next seqs in one statement; the rows in
    input order. Raises AgentSession.DoesNotExist when the session has no row (as the ORM path)."""
    data_field = SessionEvent._meta.get_field("data")
    params = {"n": len(events), "now": timezone.now(), "session": session_id,
              "types": [type_ for type_, _, _ in events], "ats": [at for _, at, _ in events],
              # the JSON column's own adapter, as the ORM would send it
              "datas": [data_field.get_db_prep_save(data, connection) for _, _, data in events]}
    with connection.cursor() as cursor:
        cursor.execute(_statement(), params)
        ids = {seq: pk for pk, seq in cursor.fetchall()}
    if not ids:
        raise AgentSession.DoesNotExist(f"no session row {session_id}")
    first = min(ids)
    return [_loaded_row(ids[first + i], (session_id, first + i, type_, at, data))
            for i, (type_, at, data) in enumerate(events)]
