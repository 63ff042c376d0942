"""State changes of agent sessions and the gap-free event log."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from controlplane.fleet_events import FleetEvents
from controlplane.state_machine import StateMachine
from sessions.agent_metrics import agent_metrics_request
from sessions.models import LIVE_SESSION_STATUSES, AgentSession, SessionEvent, SessionStatus
from sessions.event_rows import events_append_returning
from sessions.participants import PARTICIPANT_EVENTS, participants_apply

log = logging.getLogger(__name__)
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
    on_change=[FleetEvents("session", "session_id", {"job_id": "job_id"}, written={"reason": ["end_reason", "error"]})],
)


def session_transition(*, session: AgentSession, status: str, **updates: Any) -> AgentSession:
    updates.setdefault("last_activity_at", timezone.now())
    if status == S.DISCONNECTED:
        updates.setdefault("ended_at", timezone.now())
    SESSION_MACHINE.transition(session, status, **updates)
    if status == S.DISCONNECTED and updates["ended_at"] is not None:  # None: a reconnect may follow
        _refresh_agent_metrics(session.agent_id)
    return session


def session_close_disconnected(*, session: AgentSession, reason: str) -> bool:
    """A session that ended while its transport was reconnecting (disconnected, no end yet)."""
    now = timezone.now()
    closed = AgentSession.objects.filter(pk=session.pk, status=S.DISCONNECTED, ended_at__isnull=True).update(
        ended_at=now, end_reason=reason[:255], last_activity_at=now)
    if closed:
        session.ended_at, session.end_reason = now, reason[:255]
        SESSION_MACHINE.announce(session, reason=reason)  # an end without a state change: the fleet hears of it
        _refresh_agent_metrics(session.agent_id)
    return bool(closed)


def session_detach(*, session: AgentSession, user_data: dict[str, Any]) -> None:
    """Unlink an earlier attempt's row from its job (re-dispatched: the job gets a new session);
    `user_data` keeps which job and attempt it was."""
    AgentSession.objects.filter(pk=session.pk).update(job=None, user_data=user_data)
    session.job_id, session.user_data = None, user_data


def session_fail(*, session: AgentSession, error: str) -> AgentSession:
    now = timezone.now()
    SESSION_MACHINE.transition(session, S.ERROR, error=error[:4000], ended_at=now, last_activity_at=now)
    _refresh_agent_metrics(session.agent_id)
    return session


def _refresh_agent_metrics(agent_pk: int) -> None:
    """A session ended: its agent's metrics, once the end is committed (never failing the end;
    concurrent ends of one agent share a recompute, see sessions.agent_metrics)."""
    transaction.on_commit(lambda: agent_metrics_request(agent_pk=agent_pk))


LIVE_OR_RECONNECTING = frozenset(LIVE_SESSION_STATUSES) | {S.DISCONNECTED}


def session_end(*, session: AgentSession, error: str | None, reason: str) -> str | None:
    """End a session this process holds (its row as opened: pk, job and agent known) in one
    conditional UPDATE, without reading the row first: `error` → `error`, else → `disconnected`
    with the end reason. Returns the status it wrote, or None when the row was not in a state
    that allows that end from here (the caller then reads it and decides, see
    sessions.hosting.session_close). The transition is the state machine's, with its fleet event."""
    end = session_end_transition(error=error, reason=reason)
    if not SESSION_MACHINE.try_transition(session, end.target, from_=end.from_, where=end.where, **end.values):
        return None
    _refresh_agent_metrics(session.agent_id)
    return end.target


@dataclass(frozen=True)
class SessionEnd:
    target: str
    from_: frozenset[str]
    where: dict[str, Any]
    values: dict[str, Any]


def session_end_transition(*, error: str | None, reason: str) -> SessionEnd:
    """`session_end`'s transition, for it and for a caller that sends the machine's statement
    inside a larger one (sessions.call_report: the end and the report's read together)."""
    now = timezone.now()
    if error:
        # a live row, or one whose transport was reconnecting (disconnected, no end yet)
        return SessionEnd(S.ERROR, LIVE_OR_RECONNECTING, {"ended_at__isnull": True},
                          {"error": error[:4000], "ended_at": now, "last_activity_at": now})
    return SessionEnd(S.DISCONNECTED, frozenset({S.CONNECTED, S.ACTIVE, S.PAUSED}), {},
                      {"end_reason": reason[:255], "ended_at": now, "last_activity_at": now})


def session_end_won(*, session: AgentSession, end: SessionEnd) -> None:
    """The caller's own statement made `end`'s transition: what `session_end` does after a win."""
    SESSION_MACHINE.won(session, end.target, where=end.where, **end.values)
    _refresh_agent_metrics(session.agent_id)


def session_move(*, session_id: str, job_id: str | None, status: str) -> bool:
    """A plain status change reported by the runtime (connected / active / paused) in one
    conditional UPDATE, without reading the row: False when the row is already there or may
    not move there. The fleet event carries the session's job, as for a row read first."""
    if status not in (S.CONNECTED, S.ACTIVE, S.PAUSED):
        raise ValueError(f"not a plain status change: {status}")
    session = AgentSession(session_id=session_id, job_id=job_id)
    return SESSION_MACHINE.try_transition(session, status, where={"job_id": job_id}, last_activity_at=timezone.now())


def session_events_append(*, session_id: str, events: Sequence[tuple[str, datetime, dict[str, Any]]]) -> list[SessionEvent]:
    """Store events (type, at, data) with the next seqs of the session, atomically.

    The seq counter lives on the session row and is bumped with one UPDATE, which takes the
    row lock: concurrent writers for one session are serialised, so seqs never repeat or skip.
    On PostgreSQL the bump and the INSERT are one statement (sessions.event_rows).
    """
    if not events:
        return []
    if connection.vendor == "postgresql":
        return events_append_returning(session_id=session_id, events=events)
    with transaction.atomic():
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


def session_events_store(*, session_id: str, events: Sequence[tuple[str, datetime, dict[str, Any]]],
                         live_state: dict[str, Any] | None = None) -> list[SessionEvent]:
    """What the event sink writes per batch: the events and, in the same transaction, what they
    change in the session's own rows (its participants, and its live state when one is due).
    Events that change nothing else (most of them) need no transaction of their own."""
    if not live_state and not any(type_ in PARTICIPANT_EVENTS for type_, _, _ in events):
        return session_events_append(session_id=session_id, events=events)
    with transaction.atomic():
        rows = session_events_append(session_id=session_id, events=events)
        participants_apply(session_id=session_id, events=events)
        if live_state:
            session_live_state_write(session_id=session_id, fields=live_state)
    return rows


LIVE_STATE_FIELDS = frozenset({"agent_state", "user_state", "audio_state", "metrics", "conversation_state"})


def session_live_state_write(*, session_id: str, fields: dict[str, Any]) -> None:
    """The session row's live columns (see sessions.live_state); no status change, no event."""
    unknown = set(fields) - LIVE_STATE_FIELDS
    if unknown:
        raise ValueError(f"not live-state fields: {', '.join(sorted(unknown))}")
    AgentSession.objects.filter(pk=session_id).update(**fields)
