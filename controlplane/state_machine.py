"""One small engine for the three state machines (Agent, Job, AgentSession).

A transition is a conditional UPDATE ... WHERE <state> IN (<allowed sources>): the row
count says whether this caller won, so two processes can never both win one transition.
A won transition calls the machine's on-change hooks (the fleet broadcast, for instance),
so no caller announces a change by hand.

The UPDATE is the one `QuerySet.filter(...).update(...)` would send, written once per shape
(which columns it sets, which it filters on) and then only run: on a worker, compiling the
queryset of each session move and job finish cost more than the statement itself
(bench/profile_worker.py). A shape the written form does not cover (an expression, a lookup
other than `__isnull`, a model instance as a value) goes through the ORM.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from functools import lru_cache
from typing import Any

from django.db import connections, models, router, transaction

from controlplane.errors import IllegalTransition
from controlplane.prepared_statements import prepared_cursor

log = logging.getLogger(__name__)

# hook(obj, new state, attributes the change filtered on or wrote, the caller's reason)
OnChange = Callable[[models.Model, str, Mapping[str, Any], str | None], None]


class StateMachine:
    def __init__(self, entity: str, field: str, transitions: Mapping[str, set[str]],
                 on_change: Iterable[OnChange] = ()) -> None:
        # transitions maps each target state to the states it may be entered from
        self.entity = entity
        self.field = field
        self.transitions = {target: frozenset(sources) for target, sources in transitions.items()}
        self._hooks = tuple(on_change)

    def can(self, current: str, target: str) -> bool:
        return current in self.transitions.get(target, frozenset())

    def sources(self, target: str) -> frozenset[str]:
        return self.transitions.get(target, frozenset())

    def transition(self, obj: models.Model, target: str, *, reason: str | None = None, **updates: Any) -> models.Model:
        """Move `obj` to `target` if its stored state allows it; update `obj` in place."""
        if not self.try_transition(obj, target, reason=reason, **updates):
            model = type(obj)
            current = model._default_manager.filter(pk=obj.pk).values_list(self.field, flat=True).first()
            raise IllegalTransition(self.entity, current if current is not None else "missing", target)
        return obj

    def try_transition(self, obj: models.Model, target: str, *, from_: Collection[str] | None = None,
                       where: Mapping[str, Any] | None = None, reason: str | None = None, **updates: Any) -> bool:
        """`transition` for callers that expect to lose races: False instead of raising.

        `from_` narrows the allowed sources (a caller that saw the row in one state); `where`
        adds conditions (e.g. the worker that must still hold the job); its `field=value`
        equalities are known values of the row, as the updates are.
        """
        where = dict(where or {})
        won = _conditional_update(type(obj), obj.pk, self.field, self._sources(target, from_), where,
                                  {self.field: target, **updates})
        if not won:
            return False
        self.won(obj, target, where=where, reason=reason, **updates)
        return True

    def statement(self, obj: models.Model, target: str, *, from_: Collection[str] | None = None,
                  where: Mapping[str, Any] | None = None, **updates: Any) -> tuple[str, list[Any]] | None:
        """`try_transition`'s conditional UPDATE as (sql, params), for a caller that sends it
        inside a larger statement (a CTE, with its own RETURNING) to save round trips; None when
        no source may enter `target`. The caller calls `won` with the same arguments when the
        row changed, so the hooks run as for `try_transition`. Raises ValueError for a shape
        only the ORM writes (an expression, a lookup other than `__isnull`, a model instance)."""
        where = dict(where or {})
        sources = self._sources(target, from_)
        if not sources:
            return None
        values = {self.field: target, **updates}
        if not _writable(where, values):
            raise ValueError("a transition with expressions, lookups or instances has no written statement")
        sql, params, _ = _update_statement(type(obj), obj.pk, self.field, sources, where, values)
        return sql, params

    def won(self, obj: models.Model, target: str, *, where: Mapping[str, Any] | None = None,
            reason: str | None = None, **updates: Any) -> None:
        """A transition of `obj` to `target` was made (by `try_transition`, or by a caller that
        sent `statement` itself): `obj` takes the values it was filtered on and given, then the
        hooks run with them."""
        where = dict(where or {})
        setattr(obj, self.field, target)
        plain = {name: value for name, value in {**where, **updates}.items()
                 if "__" not in name and not isinstance(value, models.expressions.Combinable)}
        for name, value in plain.items():
            setattr(obj, name, value)
        known = {attname: getattr(obj, attname) for attname in (obj._meta.get_field(name).attname for name in plain)}
        self._changed(obj, known, reason)

    def _sources(self, target: str, from_: Collection[str] | None) -> frozenset[str]:
        sources = self.sources(target)
        return sources & frozenset(from_) if from_ is not None else sources

    def announce(self, obj: models.Model, *, reason: str | None = None) -> None:
        """Call the hooks for a change another statement made: the INSERT that created the row,
        or a specialised UPDATE (the claim's UPDATE … RETURNING)."""
        self._changed(obj, {}, reason)

    def _changed(self, obj: models.Model, known: Mapping[str, Any], reason: str | None) -> None:
        state = getattr(obj, self.field)
        for hook in self._hooks:
            try:
                hook(obj, state, known, reason)
            except Exception:  # noqa: BLE001 - the change is made; a hook's bug must not undo the caller's win
                log.exception("%s on-change hook %r failed", self.entity, hook)


# --- the conditional UPDATE, written once per shape ---------------------------------------------


def _conditional_update(model: type[models.Model], pk: Any, field: str, sources: frozenset[str],
                        where: Mapping[str, Any], updates: Mapping[str, Any]) -> int:
    """`model.filter(pk=pk, <field>__in=sources, **where).update(**updates)`; the row count."""
    if not sources:
        return 0  # nothing may enter the target from here (the ORM sends no statement either)
    if not _writable(where, updates):
        return model._default_manager.filter(pk=pk, **{f"{field}__in": sources}, **where).update(**updates)
    sql, params, alias = _update_statement(model, pk, field, sources, where, updates)
    with transaction.mark_for_rollback_on_error(using=alias), prepared_cursor(alias) as cursor:
        cursor.execute(sql, params)  # prepared: one text per shape, planned once per connection
        return cursor.rowcount


def _update_statement(model: type[models.Model], pk: Any, field: str, sources: frozenset[str],
                      where: Mapping[str, Any], updates: Mapping[str, Any]) -> tuple[str, list[Any], str]:
    alias = router.db_for_write(model)
    connection = connections[alias]
    where_shape = tuple((name, value if name.endswith("__isnull") else value is None) for name, value in where.items())
    sql, set_fields, pk_field, state_field, where_fields = _update_sql(
        model, alias, tuple(updates), field, len(sources), where_shape)
    params = [f.get_db_prep_save(value, connection) for f, value in zip(set_fields, updates.values())]
    params.append(pk_field.get_db_prep_value(pk, connection))
    params.extend(state_field.get_db_prep_value(source, connection) for source in sorted(sources))
    params.extend(f.get_db_prep_value(value, connection) for f, value in zip(where_fields, where.values())
                  if f is not None)
    return sql, params, alias


def _writable(where: Mapping[str, Any], updates: Mapping[str, Any]) -> bool:
    for name, value in where.items():
        if ("__" in name and not name.endswith("__isnull")) or isinstance(value, (models.Model, models.expressions.Combinable)):
            return False
        if name.endswith("__isnull") and not isinstance(value, bool):
            return False
    return not any(isinstance(value, (models.Model, models.expressions.Combinable)) for value in updates.values())


@lru_cache(maxsize=256)
def _update_sql(model: type[models.Model], alias: str, set_names: tuple[str, ...], field: str, n_sources: int,
                where_shape: tuple[tuple[str, bool | None], ...]) -> tuple[str, list[Any], Any, Any, list[Any]]:
    """The statement for one shape, and the fields whose converters prepare its parameters.
    `where_shape`: (name, True when it tests for NULL) for each condition; an `__isnull`
    condition carries its value in the shape (no parameter), an equality with None is IS NULL
    as in a queryset filter."""
    q = connections[alias].ops.quote_name
    meta = model._meta
    set_fields = [meta.get_field(name) for name in set_names]
    pk_field, state_field = meta.pk, meta.get_field(field)
    conditions = [f"{q(pk_field.column)} = %s", f"{q(state_field.column)} IN ({', '.join(['%s'] * n_sources)})"]
    where_fields: list[Any] = []
    for name, is_null in where_shape:
        if name.endswith("__isnull"):
            column = q(meta.get_field(name[: -len("__isnull")]).column)
            conditions.append(f"{column} IS NULL" if is_null else f"{column} IS NOT NULL")
            where_fields.append(None)
        elif is_null:
            conditions.append(f"{q(meta.get_field(name).column)} IS NULL")
            where_fields.append(None)
        else:
            where_field = meta.get_field(name)
            conditions.append(f"{q(where_field.column)} = %s")
            where_fields.append(where_field)
    assignments = ", ".join(f"{q(f.column)} = %s" for f in set_fields)
    sql = f"UPDATE {q(meta.db_table)} SET {assignments} WHERE {' AND '.join(conditions)}"
    return sql, set_fields, pk_field, state_field, where_fields
