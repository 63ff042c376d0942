"""AgentSession, Participant and AudioState rules from the data-model seed."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from agents.models import Agent
from sessions.models import AgentSession, Participant

pytestmark = pytest.mark.django_db


def errors_of(obj: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        obj.full_clean()
    return info.value.message_dict


@pytest.fixture
def session(active_agent: Agent) -> AgentSession:
    return AgentSession.objects.create(agent=active_agent, agent_version=1, room_id="room-1")


def test_session_ids_are_generated_and_unique(active_agent: Agent) -> None:
    a = AgentSession.objects.create(agent=active_agent, agent_version=1, room_id="r")
    b = AgentSession.objects.create(agent=active_agent, agent_version=1, room_id="r")
    assert a.session_id.startswith("ses_") and a.session_id != b.session_id


def test_a_room_id_is_required(session: AgentSession) -> None:
    session.room_id = ""
    assert "room_id" in errors_of(session)


def test_status_must_be_a_known_status(session: AgentSession) -> None:
    session.status = "sleeping"
    assert "status" in errors_of(session)


@pytest.mark.parametrize("sensitivity", [-0.1, 1.01, "high", True])
def test_vad_sensitivity_must_be_between_0_and_1(session: AgentSession, sensitivity: Any) -> None:
    session.audio_state = {"vad_sensitivity": sensitivity}
    assert "vad_sensitivity" in " ".join(errors_of(session)["audio_state"])


@pytest.mark.parametrize("sensitivity", [0.0, 0.5, 1.0])
def test_vad_sensitivity_bounds_are_accepted(session: AgentSession, sensitivity: float) -> None:
    session.audio_state = {"vad_sensitivity": sensitivity}
    session.full_clean()


@pytest.mark.parametrize(
    ("state", "needle"),
    [
        ({"buffer_size": 0}, "buffer_size"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"format": {"encoding": "pcm16", "sample_rate": 12345, "channels": 1}}, "sample_rate"),
        ({"format": {"encoding": "mp3", "sample_rate": 16000, "channels": 1}}, "encoding"),
        ({"is_muted": "no"}, "is_muted"),
    ],
)
def test_audio_state_rules(session: AgentSession, state: dict[str, Any], needle: str) -> None:
    session.audio_state = state
    assert needle in " ".join(errors_of(session)["audio_state"])


def test_session_timestamps_must_be_chronological(session: AgentSession) -> None:
    session.ended_at = session.started_at - timedelta(seconds=1)
    assert "ended_at" in errors_of(session)


def participant(session: AgentSession, **overrides: Any) -> Participant:
    fields = {"session": session, "participant_id": "PA_1", "identity": "caller-1", "joined_at": timezone.now()}
    fields.update(overrides)
    return Participant(**fields)


def test_a_participant_needs_an_identity(session: AgentSession) -> None:
    assert "identity" in errors_of(participant(session, identity=" "))


def test_participant_ids_are_unique_within_a_session(session: AgentSession) -> None:
    participant(session).save()
    assert "__all__" in errors_of(participant(session, identity="someone-else"))


def test_participant_kind_must_be_standard_sip_or_agent(session: AgentSession) -> None:
    assert "kind" in errors_of(participant(session, kind="robot"))
    participant(session, kind="sip").full_clean()


def test_participant_connection_state_must_be_known(session: AgentSession) -> None:
    assert "connection_state" in errors_of(participant(session, connection_state="lost"))


def test_participant_tracks_must_be_objects(session: AgentSession) -> None:
    assert "audio_track" in errors_of(participant(session, audio_track=["TR_1"]))


def test_participant_cannot_leave_before_joining(session: AgentSession) -> None:
    now = timezone.now()
    assert "left_at" in errors_of(participant(session, joined_at=now, left_at=now - timedelta(seconds=1)))
