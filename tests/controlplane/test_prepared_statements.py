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


@pytest.fixture
def probe_table() -> Any:
    """A committed table whose column type another connection changes, as a migration run by
    another process would; dropped afterwards."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE prepared_probe (v integer)")
        cursor.execute("INSERT INTO prepared_probe VALUES (7)")
    yield "prepared_probe"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE prepared_probe")


def _retype_from_another_connection(table: str) -> None:
    import psycopg

    params = connection.get_connection_params()
    with psycopg.connect(dbname=params["dbname"], host=params.get("host"), port=params.get("port"),
                         user=params.get("user"), autocommit=True) as other:
        other.execute(f"ALTER TABLE {table} ALTER COLUMN v TYPE bigint")


def _read_seven(probe_table: str) -> Any:
    with prepared_cursor() as cursor:
        cursor.execute(f"SELECT v FROM {probe_table} WHERE v = %s", [7])
        return cursor.fetchone()


@pytest.mark.django_db(transaction=True)  # autocommit, as a request's key lookup runs
def test_a_plan_whose_result_type_a_migration_changed_is_planned_anew(probe_table: str) -> None:
    assert _read_seven(probe_table) == (7,)  # prepared
    _retype_from_another_connection(probe_table)

    assert _read_seven(probe_table) == (7,)  # PostgreSQL refused the old plan; the lookup planned it again
    assert [s for s in _prepared_statements() if "prepared_probe" in s]  # and it is prepared again


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_the_changed_plan_is_an_error_not_a_silent_retry(probe_table: str) -> None:
    from django.db import NotSupportedError, transaction

    with prepared_cursor() as cursor:
        cursor.execute(f"SELECT v FROM {probe_table}")
    _retype_from_another_connection(probe_table)

    with pytest.raises(NotSupportedError, match="cached plan"):
        with transaction.atomic(), prepared_cursor() as cursor:
            cursor.execute(f"SELECT v FROM {probe_table}")


@pytest.mark.django_db(transaction=True)
def test_after_the_transaction_the_changed_plan_failed_rolls_back_the_caller_may_retry(probe_table: str) -> None:
    """The job path's statements run inside transactions too (the event writer's): no retry in
    there, but the rollback (psycopg drops the connection's prepared statements on ROLLBACK)
    leaves a connection whose next try plans anew, not one failing until it is recycled."""
    from django.db import NotSupportedError, transaction

    assert _read_seven(probe_table) == (7,)
    _retype_from_another_connection(probe_table)
    with pytest.raises(NotSupportedError, match="cached plan"):
        with transaction.atomic():
            _read_seven(probe_table)

    with transaction.atomic():  # the caller's retry
        assert _read_seven(probe_table) == (7,)
    assert [s for s in _prepared_statements() if "prepared_probe" in s]


@pytest.mark.django_db(transaction=True)
def test_a_savepoint_rolled_back_after_the_changed_plan_failed_lets_the_transaction_go_on(probe_table: str) -> None:
    from django.db import NotSupportedError, transaction

    assert _read_seven(probe_table) == (7,)
    _retype_from_another_connection(probe_table)
    with transaction.atomic():
        with pytest.raises(NotSupportedError, match="cached plan"):
            with transaction.atomic():  # a savepoint
                _read_seven(probe_table)
        assert _read_seven(probe_table) == (7,)  # ROLLBACK TO SAVEPOINT dropped the plans too
