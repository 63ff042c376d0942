"""The end-of-call report (`call_ended`): one event with what an application wants after a call.

Built from the stored event log (the transcript: user and agent turns as heard), the
session row (end reason, times, the metrics summary in `AgentSession.metrics`) and the
recording, once the worker has closed the row. Stored like every other event, so the
event log, the dashboard and the webhooks all carry it.
"""
from __future__ import annotations

from django.conf import settings
from django.db.models import Exists, F, OuterRef
from django.urls import reverse

from sessions.event_sink import session_events_append_and_broadcast
from sessions.models import AgentSession, Recording, SessionEvent
from runtime.events import CallEnded, TranscriptLine

TRANSCRIPT_ROLES = {"user": "user", "assistant": "assistant"}


def recording_url(session_id: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{reverse('api-session-recording', args=[session_id])}"


def transcript(session_id: str) -> list[TranscriptLine]:
    lines = []
    items = SessionEvent.objects.filter(session_id=session_id, type="conversation_item_added").order_by("seq")
    # not .iterator(): on PostgreSQL that is a server-side cursor (DECLARE, FETCH, CLOSE round
    # trips) for what is a short list, built whole below anyway
    for at, data in items.values_list("at", "data"):
        role = TRANSCRIPT_ROLES.get(str(data.get("role")))
        text = data.get("content")
        if role and isinstance(text, str) and text.strip():
            lines.append(TranscriptLine(role=role, text=text, at=at, interrupted=bool(data.get("interrupted"))))  # type: ignore[arg-type]
    return lines


REPORT_FIELDS = ("status", "end_reason", "error", "started_at", "ended_at", "metrics")


def call_report(session_id: str) -> CallEnded:
    # the row's report fields, its agent's public id and whether a recording exists: one
    # statement, without the row's other JSON columns (a long call's conversation state)
    row = (AgentSession.objects.filter(pk=session_id)
           .annotate(agent_public_id=F("agent__agent_id"),
                     has_recording=Exists(Recording.objects.filter(session_id=OuterRef("pk"))))
           .values(*REPORT_FIELDS, "agent_public_id", "has_recording").get())
    started, ended = row["started_at"], row["ended_at"]
    duration = (ended - started).total_seconds() if ended else 0.0
    return CallEnded(
        session_id=session_id, agent_id=row["agent_public_id"], status=row["status"],
        reason=row["end_reason"], error=row["error"], started_at=started, ended_at=ended,
        duration_s=round(duration, 3), transcript=transcript(session_id), metrics=dict(row["metrics"] or {}),
        recording_url=recording_url(session_id) if row["has_recording"] else None,
    )


def session_report_emit(*, session_id: str) -> SessionEvent:
    report = call_report(session_id)
    data = report.model_dump(mode="json", exclude={"type", "at"})
    return session_events_append_and_broadcast(session_id=session_id, events=[(report.type, report.at, data)])[0]
