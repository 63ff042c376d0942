"""workers_job keeps no varchar_pattern_ops ("_like") index on PostgreSQL (no query on its text
columns is a LIKE 'prefix%'), and its equality lookups still find their rows by an index."""
from __future__ import annotations

import pytest
from django.db import connection, transaction

pytestmark = pytest.mark.django_db


def _plan(sql: str, params: list[str]) -> str:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a near-empty table: the planner would scan it
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_no_pattern_index_is_left_on_the_job_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'workers_job' AND indexdef LIKE %s",
                       ["%pattern_ops%"])
        assert cursor.fetchall() == []


@pytest.mark.parametrize("column", ["job_id", "assigned_worker_id"])
def test_an_equality_lookup_still_uses_an_index(column: str) -> None:
    plan = _plan(f'SELECT 1 FROM workers_job WHERE "{column}" = %s', ["x"])
    assert "Index" in plan and "_like" not in plan, plan
