"""Model instances from rows of hand-written SQL, as a queryset would build them.

The hot paths (the API-key lookup, the dispatcher's fleet read, the worker's claim) run
SQL written once rather than built by the ORM on every request: compiling a queryset cost
more than running it (bench/profile_dispatch.py). These helpers give them the column list
and turn what comes back into model instances with the fields' from-database converters
(JSON, booleans and datetimes on SQLite), or from a row PostgreSQL sent as JSON.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from datetime import timezone as dt_timezone
from functools import lru_cache
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.utils import timezone

from controlplane.prepared_statements import prepared_cursor

M = TypeVar("M", bound=models.Model)


def select_columns(model: type[models.Model], alias: str) -> str:
    """`alias."col", …` of the model's concrete fields, in the order `model_from_row` expects."""
    q = connection.ops.quote_name
    return ", ".join(f"{alias}.{q(f.column)}" for f in model._meta.concrete_fields)


@lru_cache(maxsize=32)
def _converters(model: type[models.Model], vendor: str) -> tuple[tuple[Any, tuple[Any, ...]], ...]:
    # the backend's converters take the column expression, not the bare field (SQLite's
    # datetime and boolean converters read its output_field)
    cols = tuple(f.get_col(model._meta.db_table) for f in model._meta.concrete_fields)
    return tuple((col, tuple(connection.ops.get_db_converters(col) + col.get_db_converters(connection))) for col in cols)


@lru_cache(maxsize=32)
def _attnames(model: type[models.Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


def _db() -> Any:
    """The default database's wrapper itself: each attribute read through `django.db.connection`
    (a proxy to this thread's wrapper) costs ~8 Python calls, and the hot paths here read or
    hand on the connection many times per row."""
    return connections[DEFAULT_DB_ALIAS]


def model_from_row(model: type[M], values: Sequence[Any]) -> M:
    """An instance from the values of `select_columns(model, …)`, converted as a queryset would."""
    db = _db()
    converted = list(values)
    for i, (col, col_converters) in enumerate(_converters(model, db.vendor)):
        for converter in col_converters:
            converted[i] = converter(converted[i], col, db)
    return model.from_db(db.alias, _attnames(model), converted)


def json_value(value: Any) -> Any:
    """A JSON column or `ROW_TO_JSON` value as psycopg returned it: decoded already, or text."""
    return json.loads(value) if isinstance(value, str) else value


def model_from_json_row(model: type[M], row: Mapping[str, Any]) -> M:
    """An instance from a row PostgreSQL sent as JSON (`row_to_json`): JSON columns are values
    already, timestamps are ISO text."""
    values = []
    for column, is_datetime in _json_columns(model):
        value = row.get(column)
        if value is not None and is_datetime:
            value = datetime.fromisoformat(value)
            if timezone.is_naive(value):
                value = timezone.make_aware(value, dt_timezone.utc)
        values.append(value)
    return model.from_db(DEFAULT_DB_ALIAS, _attnames(model), values)  # the alias `connection` stands for


@lru_cache(maxsize=32)
def _json_columns(model: type[models.Model]) -> tuple[tuple[str, bool], ...]:
    # asked once per model: the dispatcher decodes the agent and every worker on each POST
    return tuple((f.column, f.get_internal_type() == "DateTimeField") for f in model._meta.concrete_fields)


_PLAIN_TEXT_FIELDS = (models.CharField, models.TextField)


@lru_cache(maxsize=32)
def _insert_fields(model: type[models.Model], vendor: str) -> tuple[tuple[models.Field, type | None], ...]:
    """Each concrete field, with the type of value its get_db_prep_save returns unchanged (None:
    always ask it). Text fields (exactly these classes, not subclasses that may convert) keep a
    str or None; on PostgreSQL a DateTimeField keeps an aware datetime or None (elsewhere it
    becomes text). Asked once: preparing the job's 25 values cost more than quoting them."""
    plain: list[tuple[models.Field, type | None]] = []
    for field in model._meta.concrete_fields:
        kind: type | None = None
        if type(field) in _PLAIN_TEXT_FIELDS:
            kind = str
        elif type(field) is models.DateTimeField and vendor == "postgresql":
            kind = datetime
        plain.append((field, kind))
    return tuple(plain)


@lru_cache(maxsize=32)
def _insert_sql(model: type[models.Model], vendor: str) -> str:
    q = connection.ops.quote_name
    fields = model._meta.concrete_fields
    return (f"INSERT INTO {q(model._meta.db_table)} ({', '.join(q(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))})")


def insert_row(obj: models.Model, *, prepared: bool = False) -> None:
    """`obj.save(force_insert=True)` in one written statement, for a model whose every value is
    set before the insert (no database defaults, no auto_now fields) and that no pre_save or
    post_save receiver listens to: those signals are not sent.

    `prepared`: run it as a prepared statement (`prepared_cursor`) where that is on. Django's
    cursor binds on the client: psycopg quotes each of the job's 25 values into the SQL text in
    Python on every POST /jobs/, and PostgreSQL parses and plans the text anew; prepared, the
    values go as parameters of a statement planned once per connection."""
    db = _db()
    values = []
    for field, plain in _insert_fields(type(obj), db.vendor):
        value = getattr(obj, field.attname)
        # a str of a text field, an aware datetime on PostgreSQL: what get_db_prep_save gives back
        if value is None and plain is not None or plain is str and isinstance(value, str) or (
                plain is datetime and type(value) is datetime and value.tzinfo is not None):
            values.append(value)
        else:
            values.append(field.get_db_prep_save(value, db))
    with prepared_cursor(db.alias) if prepared else db.cursor() as cursor:
        cursor.execute(_insert_sql(type(obj), db.vendor), values)
    obj._state.adding = False
    obj._state.db = db.alias
