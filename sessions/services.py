"""State changes of agent sessions and the gap-free event log."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from controlplane.state_machine import StateMachine
from sessions.models import AgentSession, SessionEvent, SessionStatus
from sessions.participants import participants_apply

S = SessionStatus
SESSION_MACHINE = StateMachine(
    "session",
    "status",
    {
        S.CONNECTED: {S.INITIALIZING, S.DISCONNECTED},  # disconnected → connected is a reconnect
        S.ACTIVE: {S.CONNECTED, S.PAUSED},
        S.PAUSED: {S.ACTIVE},
        S.DISCONNECTED: {S.CONNECTED, S.ACTIVE, S.PAUSED},
        S.ERROR: {S.INITIALIZING, S.CONNECTED, S.ACTIVE, S.PAUSED, S.DISCONNECTED},
    },
)


def session_transition(*, session: AgentSession, status: str, **updates: Any) -> AgentSession:
    updates.setdefault("last_activity_at", timezone.now())
    if status == S.DISCONNECTED:
        updates.setdefault("ended_at", timezone.now())
    return SESSION_MACHINE.transition(session, status, **updates)


def session_fail(*, session: AgentSession, error: str) -> AgentSession:
    now = timezone.now()
    return SESSION_MACHINE.transition(session, S.ERROR, error=error[:4000], ended_at=now, last_activity_at=now)


@transaction.atomic
def session_events_append(*, session_id: str, events: Sequence[tuple[str, datetime, dict[str, Any]]]) -> list[SessionEvent]:
    """Store events (type, at, data) with the next seqs of the session, in one transaction.

    The seq counter lives on the session row and is bumped with one UPDATE, which takes the
    row lock: concurrent writers for one session are serialised, so seqs never repeat or skip.
    """
    if not events:
        return []
    count = len(events)
    AgentSession.objects.filter(pk=session_id).update(last_seq=F("last_seq") + count, last_activity_at=timezone.now())
    last = AgentSession.objects.filter(pk=session_id).values_list("last_seq", flat=True).get()
    first = last - count + 1
    rows = [
        SessionEvent(session_id=session_id, seq=first + i, type=type_, at=at, data=data)
        for i, (type_, at, data) in enumerate(events)
    ]
    SessionEvent.objects.bulk_create(rows)
    return rows


@transaction.atomic
def session_events_store(*, session_id: str, events: Sequence[tuple[str, datetime, dict[str, Any]]]) -> list[SessionEvent]:
    """What the event sink writes per batch: the events and, in the same transaction, what they
    change in the session's own rows (its participants)."""
    rows = session_events_append(session_id=session_id, events=events)
    participants_apply(session_id=session_id, events=events)
    return rows
