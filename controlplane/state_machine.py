"""One small engine for the three state machines (Agent, Job, AgentSession).

A transition is a conditional UPDATE ... WHERE <state> IN (<allowed sources>): the row
count says whether this caller won, so two processes can never both win one transition.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models

from controlplane.errors import IllegalTransition


class StateMachine:
    def __init__(self, entity: str, field: str, transitions: Mapping[str, set[str]]) -> None:
        # transitions maps each target state to the states it may be entered from
        self.entity = entity
        self.field = field
        self.transitions = {target: frozenset(sources) for target, sources in transitions.items()}

    def can(self, current: str, target: str) -> bool:
        return current in self.transitions.get(target, frozenset())

    def sources(self, target: str) -> frozenset[str]:
        return self.transitions.get(target, frozenset())

    def transition(self, obj: models.Model, target: str, **updates: Any) -> models.Model:
        """Move `obj` to `target` if its stored state allows it; update `obj` in place."""
        model = type(obj)
        sources = self.sources(target)
        won = model._default_manager.filter(pk=obj.pk, **{f"{self.field}__in": sources}).update(
            **{self.field: target}, **updates
        )
        if not won:
            current = model._default_manager.filter(pk=obj.pk).values_list(self.field, flat=True).first()
            raise IllegalTransition(self.entity, current if current is not None else "missing", target)
        setattr(obj, self.field, target)
        for name, value in updates.items():
            if not isinstance(value, models.expressions.Combinable):
                setattr(obj, name, value)
        return obj
