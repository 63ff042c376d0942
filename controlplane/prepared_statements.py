"""A cursor whose statements PostgreSQL parses and plans once per connection (prepared).

Django's PostgreSQL backend binds parameters on the client (psycopg's ClientCursor: each value
quoted into the SQL text in Python) and turns psycopg's prepared statements off, so the server
parses and plans every statement anew. The API-key lookup of every API request (with its
companion read: a dispatch's agent and fleet) took longer to plan than to run (EXPLAIN
ANALYZE: 0.20 ms planning, 0.09 ms execution); prepared, the lookup took 0.24-0.40 ms instead
of 0.68-0.78 ms, with less CPU in the web process too.
The job INSERT's time is its commit, but bound on the client psycopg quoted its 25 values into
the text in Python on every dispatch: prepared (`insert_row(prepared=True)`) a POST /api/v1/jobs/
costs 5.06 → 4.94 M instructions (callgrind, bench/profile_dispatch.py's POST).
The statements every job runs (the claim, the end, the take-next, the session close with its
report, the event appends, the machines' conditional UPDATEs, the fleet reads) are prepared too:
unprepared, PostgreSQL spent about a third of their time planning them (pg_stat_statements,
bench/dispatch.py).

A plan whose result type a migration (in another process) changed is refused by PostgreSQL
("cached plan must not change result type"). In autocommit the cursor drops the connection's
plans and tries again. Inside a transaction the error stands (the transaction is aborted; a
retry in it cannot succeed): the caller's rollback, of the transaction or of a savepoint, makes
psycopg drop the connection's prepared statements, so the caller's own retry plans anew.

Only the statements run through `prepared_cursor` are prepared, on first use on each
connection (psycopg keeps the names; a pooled connection keeps them); Django's own cursors on
the same connection stay as they are. Off with DB_PREPARED_STATEMENTS=false (a
transaction-pooling PgBouncer older than 1.21 cannot keep prepared statements), and elsewhere
than PostgreSQL (a plain cursor).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

# psycopg prepares a statement after this many executions, or at once when asked
# (`prepare=True`); Django leaves the connection's threshold unset, which refuses even that.
# Set this high, only the statements that ask are prepared.
_ONLY_WHEN_ASKED = 2**31
CACHED_PLAN_CHANGED = "cached plan must not change result type"  # PostgreSQL's message (SQLSTATE 0A000)


@lru_cache(maxsize=1)
def _postgresql() -> tuple[type, Any]:
    """The cursor class, and a function giving a new cursor the connection's time zone when the
    connection's adapters disagree with it (as DatabaseWrapper.create_cursor does)."""
    from django.db.backends.postgresql.base import TIMESTAMPTZ_OID, ServerBindingCursor
    from django.db.backends.postgresql.psycopg_any import register_tzloader
    from psycopg.errors import FeatureNotSupported
    from psycopg.pq import Format

    class PreparingCursor(ServerBindingCursor):
        """Django's server-binding psycopg cursor, each statement prepared."""

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            try:
                return super().execute(query, params, prepare=True, **kwargs)
            except FeatureNotSupported as exc:
                # "cached plan must not change result type": a migration (run by another
                # process) changed the type of a column this plan returns. DEALLOCATE ALL drops
                # the server's plans and psycopg its names of them (it watches for that
                # command), so the second try plans anew; only in autocommit, where the failure
                # aborted no transaction of the caller's (in one, the caller's rollback drops them)
                if CACHED_PLAN_CHANGED not in str(exc) or not self.connection.autocommit:
                    raise
                super().execute("DEALLOCATE ALL", prepare=False)
                return super().execute(query, params, prepare=True, **kwargs)

    def same_timezone(connection: Any, raw: Any, cursor: Any) -> None:
        if connection.timezone != raw.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).timezone:
            register_tzloader(connection.timezone, cursor)

    return PreparingCursor, same_timezone


@contextmanager
def prepared_cursor(using: str = DEFAULT_DB_ALIAS) -> Iterator[Any]:
    """A Django cursor of the `using` connection (its error wrapping and execute wrappers as
    usual) whose statements are prepared on PostgreSQL; a plain `connection.cursor()` elsewhere,
    when off, or while queries are logged."""
    connection = connections[using]
    # while Django logs queries (DEBUG, CaptureQueriesContext) a plain cursor: psycopg keeps no
    # SQL text of a prepared execution for the log to show
    if connection.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS or connection.queries_logged:
        with connection.cursor() as cursor:
            yield cursor
        return
    cursor_class, same_timezone = _postgresql()
    # what BaseDatabaseWrapper._cursor does, with our cursor class in place of create_cursor's
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        raw = connection.connection
        if raw.prepare_threshold is None:
            raw.prepare_threshold = _ONLY_WHEN_ASKED
        cursor = cursor_class(raw)
        same_timezone(connection, raw, cursor)
    connection.validate_thread_sharing()
    with connection.make_cursor(cursor) as wrapped:
        yield wrapped
