"""Participant rows, kept from the session's `participant_joined` / `participant_left` events.

The event sink calls `participants_apply` with each batch it stores, inside the batch's
transaction, so the rows never disagree with the event log. Whatever the transport (LiveKit,
local, another one), the events carry the runtime's `ParticipantInfo`; this is the one place
that turns it into rows.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from pydantic import ValidationError as PayloadError

from sessions.models import ConnectionState, Participant, ParticipantKind
from runtime.events import ParticipantInfo

log = logging.getLogger(__name__)

PARTICIPANT_EVENTS = frozenset({"participant_joined", "participant_left"})
_MODEL_KINDS = frozenset(ParticipantKind.values)


def _track(info: ParticipantInfo, kind: str) -> dict[str, Any]:
    """The participant's first published track of `kind` (audio/video), or {}."""
    for track in info.tracks:
        if track.get("kind") == kind:
            return {key: track[key] for key in ("sid", "name", "source", "muted", "subscribed") if key in track}
    return {}


def _fields(info: ParticipantInfo) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if info.attributes:
        metadata["attributes"] = dict(info.attributes)
    if info.metadata:
        metadata["metadata"] = info.metadata
    if info.kind not in _MODEL_KINDS:  # ingress, egress, connector…: kept, shown as standard
        metadata["kind"] = info.kind
    return {
        "identity": info.identity,
        "name": info.name,
        "kind": info.kind if info.kind in _MODEL_KINDS else ParticipantKind.STANDARD,
        "permissions": dict(info.permissions),
        "audio_track": _track(info, "audio"),
        "video_track": _track(info, "video"),
        "metadata": metadata,
    }


def _joined(session_id: str, info: ParticipantInfo, at: datetime) -> None:
    participant_id = info.sid or info.identity
    row = Participant.objects.filter(session_id=session_id, participant_id=participant_id).first()
    if row is None:
        row = Participant(session_id=session_id, participant_id=participant_id, joined_at=at)
    for name, value in _fields(info).items():
        setattr(row, name, value)
    row.connection_state = info.connection_state if info.connection_state != "disconnected" else ConnectionState.CONNECTED
    row.left_at = None  # the same participant back (a rejoin with the same sid)
    row.full_clean(exclude=["session"])
    row.save()


def _left(session_id: str, info: ParticipantInfo, at: datetime) -> None:
    rows = Participant.objects.filter(session_id=session_id)
    # the runtime sends the info it knew (with sid), or only the identity if it never saw a join
    row = rows.filter(participant_id=info.sid).first() if info.sid else None
    if row is None:
        row = rows.filter(identity=info.identity, left_at__isnull=True).order_by("-joined_at").first()
    if row is None:
        row = rows.filter(participant_id=info.identity).first()
    if row is None:
        row = Participant(session_id=session_id, participant_id=info.sid or info.identity, joined_at=at,
                          **_fields(info))
    elif info.tracks or info.permissions:
        for name, value in _fields(info).items():
            setattr(row, name, value)
    row.connection_state = ConnectionState.DISCONNECTED
    row.left_at = max(at, row.joined_at)
    row.full_clean(exclude=["session"])
    row.save()


def participants_apply(*, session_id: str, events: Iterable[tuple[str, datetime, dict[str, Any]]]) -> int:
    """Create or update the rows the batch's participant events describe; returns how many.

    A malformed payload is logged and skipped: the events themselves are stored regardless.
    Call it inside the transaction that stores the events.
    """
    applied = 0
    for type_, at, data in events:
        if type_ not in PARTICIPANT_EVENTS:
            continue
        try:
            info = ParticipantInfo.model_validate(data.get("participant") or {})
            (_joined if type_ == "participant_joined" else _left)(session_id, info, at)
        except (PayloadError, ValidationError) as exc:
            log.warning("%s of session %s not recorded as a participant: %s", type_, session_id, exc)
            continue
        applied += 1
    return applied
