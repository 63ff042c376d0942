"""The end-of-call report (`call_ended`): one event with what an application wants after a call.

Built from the stored event log (the transcript: user and agent turns as heard), the
session row (end reason, times, the metrics summary in `AgentSession.metrics`) and the
recording, once the worker has closed the row. Stored like every other event, so the
event log, the dashboard and the webhooks all carry it.
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Exists, F, OuterRef
from django.urls import reverse

from controlplane.sql_rows import json_value
from sessions.event_sink import session_events_append_and_broadcast
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


def call_report(session_id: str) -> CallEnded:
    if connection.vendor == "postgresql":
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


def _report_row(session_id: str) -> dict[str, Any]:
    # the row's report fields, its agent's public id and whether a recording exists: one
    # statement, without the row's other JSON columns (a long call's conversation state)
    return (AgentSession.objects.filter(pk=session_id)
            .annotate(agent_public_id=F("agent__agent_id"),
                      has_recording=Exists(Recording.objects.filter(session_id=OuterRef("pk"))))
            .values(*REPORT_FIELDS, "agent_public_id", "has_recording").get())


@lru_cache(maxsize=1)
def _report_sql() -> str:
    # written once: building the queryset above cost more than running it (bench/profile_worker.py)
    q = connection.ops.quote_name
    session, event = q(AgentSession._meta.db_table), q(SessionEvent._meta.db_table)
    agent, recording = q(AgentSession._meta.get_field("agent").related_model._meta.db_table), q(Recording._meta.db_table)
    columns = ", ".join(f"s.{q(AgentSession._meta.get_field(name).column)}" for name in REPORT_FIELDS)
    return (
        f"SELECT {columns}, a.agent_id, EXISTS (SELECT 1 FROM {recording} r WHERE r.session_id = s.session_id), "
        f"t.ats, t.datas FROM {session} s JOIN {agent} a ON a.id = s.agent_id "
        f"LEFT JOIN LATERAL (SELECT array_agg(e.at ORDER BY e.seq) AS ats, array_agg(e.data ORDER BY e.seq) AS datas "
        f"FROM {event} e WHERE e.session_id = s.session_id AND e.type = %s) t ON TRUE "
        f"WHERE s.session_id = %s"
    )


def _report_row_returning(session_id: str) -> tuple[dict[str, Any], list[TranscriptLine]]:
    """The report's row fields and its transcript in one statement (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute(_report_sql(), [TRANSCRIPT_EVENT, session_id])
        found = cursor.fetchone()
    if found is None:
        raise AgentSession.DoesNotExist(f"no session row {session_id}")
    n = len(REPORT_FIELDS)
    row = dict(zip(REPORT_FIELDS, found[:n]))
    row["metrics"] = json_value(row["metrics"])
    row["agent_public_id"], row["has_recording"] = found[n], found[n + 1]
    ats: list[datetime] = found[n + 2] or []
    datas = [json_value(data) for data in found[n + 3] or []]
    return row, transcript_lines(zip(ats, datas))


def session_report_emit(*, session_id: str) -> SessionEvent:
    report = call_report(session_id)
    data = report.model_dump(mode="json", exclude={"type", "at"})
    return session_events_append_and_broadcast(session_id=session_id, events=[(report.type, report.at, data)])[0]
