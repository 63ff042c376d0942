"""The API-key lookup runs as a PostgreSQL prepared statement (controlplane.prepared_statements);
Django's own statements on the same connection are not prepared, and the cursor keeps Django's
error types, execute wrappers and query log."""
from __future__ import annotations

from typing import Any

import pytest
from django.db import ProgrammingError, connection
from django.test.utils import CaptureQueriesContext

from controlplane.models import ApiKey
from controlplane.prepared_statements import prepared_cursor

pytestmark = pytest.mark.django_db  # on PostgreSQL, as scripts/test runs every test


def _prepared_statements() -> list[str]:
    """The statements this session (this connection) has prepared on the server."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_key_lookup_is_prepared_once_and_answers_as_before() -> None:
    key, raw = ApiKey.generate(name="ci", scopes=["read"])

    assert ApiKey.authenticate(raw) == key
    assert ApiKey.authenticate(raw) == key  # the second lookup runs the prepared statement
    assert ApiKey.authenticate("cpk_nope_nope") is None

    lookups = [s for s in _prepared_statements() if "key_hash" in s]
    assert len(lookups) == 1, lookups


def test_the_lookup_is_not_prepared_when_the_setting_is_off(settings: Any) -> None:
    settings.DB_PREPARED_STATEMENTS = False
    key, raw = ApiKey.generate(name="ci", scopes=["read"])

    assert ApiKey.authenticate(raw) == key

    assert not [s for s in _prepared_statements() if "key_hash" in s]


def test_djangos_own_statements_stay_unprepared_on_a_connection_that_prepared_one() -> None:
    with prepared_cursor() as cursor:
        cursor.execute("SELECT %s::int + 1", [1])
        assert cursor.fetchone() == (2,)
    for _ in range(10):  # psycopg's own threshold would prepare a statement run this often
        list(ApiKey.objects.filter(name="nobody"))

    statements = _prepared_statements()
    assert any("+ 1" in s for s in statements)
    assert not [s for s in statements if "controlplane_apikey" in s and "key_hash" not in s]


def test_its_errors_are_djangos_and_while_queries_are_logged_the_log_has_its_sql() -> None:
    with CaptureQueriesContext(connection) as captured:
        with prepared_cursor() as cursor:
            cursor.execute("SELECT %s::int * 3", [2])
            assert cursor.fetchone() == (6,)
    assert [q["sql"] for q in captured.captured_queries] == ["SELECT 2::int * 3"]

    seen = []
    with connection.execute_wrapper(lambda execute, sql, *rest: seen.append(sql) or execute(sql, *rest)):
        with prepared_cursor() as cursor:
            cursor.execute("SELECT %s::int * 4", [2])
            assert cursor.fetchone() == (8,)
    assert seen == ["SELECT %s::int * 4"]
    assert any("* 4" in s for s in _prepared_statements())  # prepared when not logged

    with pytest.raises(ProgrammingError):
        with prepared_cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM controlplane_apikey")
