"""What this test's connection ran as prepared statements (controlplane.prepared_statements): a
statement run through a plain cursor, or one that failed and fell back to another path, leaves
no prepared execution behind."""
from __future__ import annotations

from django.db import connection


def prepared_runs(prefix: str) -> int:
    """How many times this connection has run the prepared statements that begin with `prefix`
    (PostgreSQL's count of their plans used: generic and custom)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(SUM(generic_plans + custom_plans), 0) FROM pg_prepared_statements "
                       "WHERE starts_with(statement, %s)", [prefix])
        return int(cursor.fetchone()[0])
