"""One small engine for the three state machines (Agent, Job, AgentSession).

A transition is a conditional UPDATE ... WHERE <state> IN (<allowed sources>): the row
count says whether this caller won, so two processes can never both win one transition.
A won transition calls the machine's on-change hooks (the fleet broadcast, for instance),
so no caller announces a change by hand.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from django.db import models

from controlplane.errors import IllegalTransition

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
        sources = self.sources(target)
        if from_ is not None:
            sources = sources & frozenset(from_)
        where = dict(where or {})
        won = type(obj)._default_manager.filter(pk=obj.pk, **{f"{self.field}__in": sources}, **where).update(
            **{self.field: target}, **updates
        )
        if not won:
            return False
        setattr(obj, self.field, target)
        plain = {name: value for name, value in {**where, **updates}.items()
                 if "__" not in name and not isinstance(value, models.expressions.Combinable)}
        for name, value in plain.items():
            setattr(obj, name, value)
        known = {attname: getattr(obj, attname) for attname in (obj._meta.get_field(name).attname for name in plain)}
        self._changed(obj, known, reason)
        return True

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
