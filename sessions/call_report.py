"""The end-of-call report (`call_ended`): one event with what an application wants after a call.

Built from the stored event log (the transcript: user and agent turns as heard), the
session row (end reason, times, the metrics summary in `AgentSession.metrics`) and the
recording, once the worker has closed the row. Stored like every other event, so the
event log, the dashboard and the webhooks all carry it.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Exists, F, OuterRef
from django.urls import reverse

from controlplane.prepared_statements import prepared_cursor
from controlplane.sql_rows import json_value
from sessions.event_sink import session_events_append_and_broadcast
from sessions.services import SESSION_MACHINE, session_end, session_end_transition, session_end_won
from sessions.models import AgentSession, Recording, SessionEvent
from runtime.events import CallEnded, TranscriptLine

TRANSCRIPT_ROLES = {"user": "user", "assistant": "assistant"}
TRANSCRIPT_EVENT = "conversation_item_added"


def recording_url(session_id: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{reverse('api-session-recording', args=[session_id])}"


def transcript(session_id: str) -> list[TranscriptLine]:
    items = SessionEvent.objects.filter(session_id=session_id, type=TRANSCRIPT_EVENT).order_by("seq")
    # not .iterator(): on PostgreSQL that is a server-side cursor (DECLARE, FETCH, CLOSE round
    # trips) for what is a short list, built whole below anyway
    return transcript_lines(items.values_list("at", "data"))


def transcript_lines(items: Any) -> list[TranscriptLine]:
    """The user and agent turns as heard, from (at, data) of the conversation items in seq order."""
    lines = []
    for at, data in items:
        role = TRANSCRIPT_ROLES.get(str(data.get("role")))
        text = data.get("content")
        if role and isinstance(text, str) and text.strip():
            lines.append(TranscriptLine(role=role, text=text, at=at, interrupted=bool(data.get("interrupted"))))  # type: ignore[arg-type]
    return lines


REPORT_FIELDS = ("status", "end_reason", "error", "started_at", "ended_at", "metrics")


ReportRead = tuple[dict[str, Any], list[TranscriptLine]]  # the row's report fields, the transcript


def call_report(session_id: str, read: ReportRead | None = None) -> CallEnded:
    """The report of a closed session; `read`: what `session_end_reading_report` read with the close."""
    if read is not None:
        row, lines = read
    elif connection.vendor == "postgresql":
        row, lines = _report_row_returning(session_id)
    else:
        row, lines = _report_row(session_id), transcript(session_id)
    started, ended = row["started_at"], row["ended_at"]
    duration = (ended - started).total_seconds() if ended else 0.0
    return CallEnded(
        session_id=session_id, agent_id=row["agent_public_id"], status=row["status"],
        reason=row["end_reason"], error=row["error"], started_at=started, ended_at=ended,
        duration_s=round(duration, 3), transcript=lines, metrics=dict(row["metrics"] or {}),
        recording_url=recording_url(session_id) if row["has_recording"] else None,
    )


def session_end_reading_report(*, session: AgentSession, error: str | None, reason: str) -> tuple[str | None, ReportRead | None]:
    """`sessions.services.session_end` and, in the same statement on PostgreSQL, what the
    end-of-call report reads: the row as the end left it (its UPDATE's RETURNING), its agent's
    id, the recording's existence and the transcript. The report is sent only after the row is
    closed (and by then the entry point has stored its last events and saved the recording), so
    reading it with the close reads the same. Returns (the status written or None, as
    session_end; the read, or None when not read)."""
    if connection.vendor != "postgresql":
        return session_end(session=session, error=error, reason=reason), None
    end = session_end_transition(error=error, reason=reason)
    statement = SESSION_MACHINE.statement(session, end.target, from_=end.from_, where=end.where, **end.values)
    if statement is None:
        return None, None
    update, params = statement
    with prepared_cursor() as cursor:  # planned once per connection: planning it cost more than running it
        cursor.execute(_end_report_sql(update), [*params, TRANSCRIPT_EVENT])
        found = cursor.fetchone()
    if found is None:  # not in a state this end may leave: the caller reads the row and decides
        return None, None
    session_end_won(session=session, end=end)
    return end.target, _report_read(found)


def _report_row(session_id: str) -> dict[str, Any]:
    # the row's report fields, its agent's public id and whether a recording exists: one
    # statement, without the row's other JSON columns (a long call's conversation state)
    return (AgentSession.objects.filter(pk=session_id)
            .annotate(agent_public_id=F("agent__agent_id"),
                      has_recording=Exists(Recording.objects.filter(session_id=OuterRef("pk"))))
            .values(*REPORT_FIELDS, "agent_public_id", "has_recording").get())


def _report_select(source: str) -> str:
    """The report's read of the session row(s) in `source` (aliased s): its fields, its agent's
    public id, whether a recording exists, the transcript's times and items in seq order."""
    q = connection.ops.quote_name
    event, recording = q(SessionEvent._meta.db_table), q(Recording._meta.db_table)
    agent = q(AgentSession._meta.get_field("agent").related_model._meta.db_table)
    columns = ", ".join(f"s.{q(AgentSession._meta.get_field(name).column)}" for name in REPORT_FIELDS)
    return (
        f"SELECT {columns}, a.agent_id, EXISTS (SELECT 1 FROM {recording} r WHERE r.session_id = s.session_id), "
        f"t.ats, t.datas FROM {source} s JOIN {agent} a ON a.id = s.agent_id "
        f"LEFT JOIN LATERAL (SELECT array_agg(e.at ORDER BY e.seq) AS ats, array_agg(e.data ORDER BY e.seq) AS datas "
        f"FROM {event} e WHERE e.session_id = s.session_id AND e.type = %s) t ON TRUE"
    )


@lru_cache(maxsize=1)
def _report_sql() -> str:
    # written once: building the queryset above cost more than running it (bench/profile_worker.py)
    return f"{_report_select(connection.ops.quote_name(AgentSession._meta.db_table))} WHERE s.session_id = %s"


@lru_cache(maxsize=4)
def _end_report_sql(update: str) -> str:
    """The end's UPDATE (the session machine's statement) RETURNING the row as it left it, read
    for the report: the rest of the statement sees the rows as they were before the UPDATE."""
    q = connection.ops.quote_name
    returned = ", ".join(q(AgentSession._meta.get_field(name).column) for name in ("session_id", "agent", *REPORT_FIELDS))
    return f"WITH closed AS ({update} RETURNING {returned}) {_report_select('closed')}"


def _report_row_returning(session_id: str) -> ReportRead:
    """The report's row fields and its transcript in one statement (PostgreSQL)."""
    with prepared_cursor() as cursor:
        cursor.execute(_report_sql(), [TRANSCRIPT_EVENT, session_id])
        found = cursor.fetchone()
    if found is None:
        raise AgentSession.DoesNotExist(f"no session row {session_id}")
    return _report_read(found)


def _report_read(found: Sequence[Any]) -> ReportRead:
    n = len(REPORT_FIELDS)
    row = dict(zip(REPORT_FIELDS, found[:n]))
    row["metrics"] = json_value(row["metrics"])
    row["agent_public_id"], row["has_recording"] = found[n], found[n + 1]
    ats: list[datetime] = found[n + 2] or []
    datas = [json_value(data) for data in found[n + 3] or []]
    return row, transcript_lines(zip(ats, datas))


def session_report_emit(*, session_id: str, read: ReportRead | None = None) -> SessionEvent:
    report = call_report(session_id, read)
    data = report.model_dump(mode="json", exclude={"type", "at"})
    return session_events_append_and_broadcast(session_id=session_id, events=[(report.type, report.at, data)])[0]
