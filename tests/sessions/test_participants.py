"""Participant rows come from the participant events the sink stores, whatever the transport."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from sessions.event_sink import DjangoEventSink, session_events_append_and_broadcast
from sessions.models import AgentSession, Participant, SessionEvent
from runtime import AgentSession as RuntimeSession
from runtime import SessionOptions
from runtime import events as ev
from runtime.providers.fake import FakeLLM
from runtime.transports import LocalTransport

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("writer_idle")]

T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)


def caller(**overrides: object) -> ev.ParticipantInfo:
    fields: dict[str, object] = {
        "identity": "caller-1", "sid": "PA_caller", "name": "Ana", "kind": "sip",
        "permissions": {"can_publish": True, "can_subscribe": True, "can_publish_data": False},
        "tracks": [{"sid": "TR_mic", "name": "mic", "kind": "audio", "source": "microphone", "muted": False,
                    "subscribed": True},
                   {"sid": "TR_cam", "name": "cam", "kind": "video", "source": "camera", "muted": True,
                    "subscribed": False}],
        "attributes": {"lang": "en"}, "metadata": '{"plan": "pro"}',
    }
    fields.update(overrides)
    return ev.ParticipantInfo.model_validate(fields)


def test_a_join_becomes_a_row_with_identity_kind_permissions_and_tracks(live_session: AgentSession) -> None:
    sink = DjangoEventSink(live_session.session_id)
    sink.emit(ev.ParticipantJoined(participant=caller(), at=T0))
    assert sink.close()

    row = Participant.objects.get(session=live_session)
    assert (row.participant_id, row.identity, row.name, row.kind) == ("PA_caller", "caller-1", "Ana", "sip")
    assert row.permissions == {"can_publish": True, "can_subscribe": True, "can_publish_data": False}
    assert row.audio_track == {"sid": "TR_mic", "name": "mic", "source": "microphone", "muted": False, "subscribed": True}
    assert row.video_track["sid"] == "TR_cam" and row.video_track["muted"] is True
    assert row.connection_state == "connected" and row.joined_at == T0 and row.left_at is None
    assert row.metadata == {"attributes": {"lang": "en"}, "metadata": '{"plan": "pro"}'}
    assert SessionEvent.objects.filter(session=live_session, type="participant_joined").count() == 1


def test_a_leave_closes_the_row_with_the_latest_tracks(live_session: AgentSession) -> None:
    sink = DjangoEventSink(live_session.session_id)
    sink.emit(ev.ParticipantJoined(participant=caller(tracks=[]), at=T0))
    left_info = caller(connection_state="disconnected")  # by now it published its microphone
    sink.emit(ev.ParticipantLeft(participant=left_info, reason="disconnected", at=T0 + timedelta(seconds=42)))
    assert sink.close()

    row = Participant.objects.get(session=live_session)
    assert row.connection_state == "disconnected"
    assert row.left_at == T0 + timedelta(seconds=42)
    assert row.audio_track["sid"] == "TR_mic"


def test_a_rejoin_with_a_new_sid_is_a_second_row_and_other_kinds_are_kept(live_session: AgentSession) -> None:
    sink = DjangoEventSink(live_session.session_id)
    sink.emit(ev.ParticipantJoined(participant=caller(), at=T0))
    sink.emit(ev.ParticipantLeft(participant=caller(), at=T0 + timedelta(seconds=5)))
    sink.emit(ev.ParticipantJoined(participant=caller(sid="PA_caller2"), at=T0 + timedelta(seconds=9)))
    sink.emit(ev.ParticipantJoined(participant=ev.ParticipantInfo(identity="rec", sid="PA_eg", kind="egress"), at=T0))
    assert sink.close()

    rows = {r.participant_id: r for r in Participant.objects.filter(session=live_session)}
    assert set(rows) == {"PA_caller", "PA_caller2", "PA_eg"}
    assert rows["PA_caller"].left_at is not None and rows["PA_caller2"].left_at is None
    assert rows["PA_eg"].kind == "standard" and rows["PA_eg"].metadata == {"kind": "egress"}


def test_a_leave_without_a_join_still_records_who_was_there(live_session: AgentSession) -> None:
    session_events_append_and_broadcast(session_id=live_session.session_id, events=[
        ("participant_left", T0, {"participant": {"identity": "ghost"}, "reason": "disconnected"}),
    ])
    row = Participant.objects.get(session=live_session)
    assert (row.identity, row.participant_id, row.connection_state) == ("ghost", "ghost", "disconnected")
    assert row.joined_at == row.left_at == T0


def test_a_malformed_participant_payload_is_stored_as_an_event_but_makes_no_row(live_session: AgentSession) -> None:
    sink = DjangoEventSink(live_session.session_id)
    sink.emit({"type": "participant_joined", "data": {"participant": {"name": "no identity"}}})
    sink.emit({"type": "participant_joined", "data": {"participant": {"identity": "  "}}})
    sink.emit(ev.ParticipantJoined(participant=caller(), at=T0))
    assert sink.close()

    assert SessionEvent.objects.filter(session=live_session, type="participant_joined").count() == 3
    assert list(Participant.objects.filter(session=live_session).values_list("identity", flat=True)) == ["caller-1"]


def test_a_runtime_session_keeps_its_rows_current_through_the_sink(live_session: AgentSession) -> None:
    sink = DjangoEventSink(live_session.session_id)

    def present() -> set[str]:
        return set(Participant.objects.filter(session_id=live_session.session_id, left_at__isnull=True)
                   .values_list("identity", flat=True))

    async def call() -> None:
        session = RuntimeSession(options=SessionOptions(session_id=live_session.session_id), llm=FakeLLM(),
                                 sink=sink, transport=LocalTransport())
        await session.start()
        session.participant_joined(caller())
        session.participant_joined(ev.ParticipantInfo(identity="supervisor", sid="PA_sup"))
        await asyncio.to_thread(sink.flush)
        assert await asyncio.to_thread(present) == {"caller-1", "supervisor"}
        session.participant_left("caller-1", "disconnected")
        await session.stop("done")

    asyncio.run(call())
    assert sink.close()
    rows = {r.identity: r for r in Participant.objects.filter(session=live_session)}
    assert rows["caller-1"].connection_state == "disconnected" and rows["caller-1"].left_at is not None
    assert rows["supervisor"].connection_state == "connected" and rows["supervisor"].left_at is None


def test_the_sessions_api_lists_the_rows(live_session: AgentSession, api_key_factory: object) -> None:
    from rest_framework.test import APIClient

    _, raw = api_key_factory("read")  # type: ignore[operator]
    sink = DjangoEventSink(live_session.session_id)
    sink.emit(ev.ParticipantJoined(participant=caller(), at=T0))
    assert sink.close()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    [row] = client.get(f"/api/v1/sessions/{live_session.session_id}/").json()["participants"]
    assert row["identity"] == "caller-1" and row["kind"] == "sip" and row["connection_state"] == "connected"
    assert row["audio_track"]["sid"] == "TR_mic" and row["permissions"]["can_publish"] is True
