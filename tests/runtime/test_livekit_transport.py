"""LiveKit transport: token minting (decoded and checked) and the room-event mapping."""
from __future__ import annotations

import asyncio
import datetime
from types import SimpleNamespace

import pytest
from livekit import api, rtc
from livekit.rtc._proto import participant_pb2

from sessions.runtime import AgentSession, SessionOptions
from sessions.runtime.providers.fake import FakeLLM
from sessions.runtime.transports import LocalTransport
from sessions.runtime.transports.livekit import (
    LiveKitTransport,
    RoomEventMapper,
    mint_agent_token,
    participant_info,
)

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def _participant(identity: str, *, kind: int = 0, sid: str = "PA_1", tracks: dict | None = None, **perms: bool):
    return SimpleNamespace(identity=identity, sid=sid, name=identity.title(), kind=kind, metadata='{"plan":"pro"}',
                           attributes={"lang": "en"},
                           permissions=participant_pb2.ParticipantPermission(**perms),
                           track_publications=tracks or {})


def _mic(sid: str = "TR_mic", muted: bool = False):
    return SimpleNamespace(sid=sid, name="mic", kind=rtc.TrackKind.KIND_AUDIO,
                           source=rtc.TrackSource.SOURCE_MICROPHONE, muted=muted, subscribed=True)


def test_agent_token_is_short_lived_and_least_privilege():
    jwt = mint_agent_token(api_key="APIkey1", api_secret=SECRET, room="support-42", job_id="job-7")
    claims = api.TokenVerifier("APIkey1", SECRET).verify(jwt)
    assert claims.identity == "agent-job-7"
    assert claims.kind == "agent"
    g = claims.video
    assert g.room_join is True and g.room == "support-42"
    assert g.can_publish and g.can_subscribe and g.can_publish_data
    assert g.can_publish_sources == ["microphone"]
    assert g.agent is True
    for power in ("room_create", "room_list", "room_record", "room_admin", "ingress_admin", "hidden",
                  "recorder", "can_update_own_metadata"):
        assert not getattr(g, power), power

    import jwt as pyjwt

    raw = pyjwt.decode(jwt, SECRET, algorithms=["HS256"], issuer="APIkey1")
    assert raw["sub"] == "agent-job-7"
    assert raw["exp"] - raw["nbf"] == 600
    assert "roomAdmin" not in raw["video"]


def test_token_ttl_is_configurable_and_signature_is_checked():
    jwt = mint_agent_token(api_key="k", api_secret=SECRET, room="r", job_id="1",
                           ttl=datetime.timedelta(seconds=90))
    import jwt as pyjwt

    raw = pyjwt.decode(jwt, SECRET, algorithms=["HS256"])
    assert raw["exp"] - raw["nbf"] == 90
    with pytest.raises(Exception):
        api.TokenVerifier("k", SECRET + "x").verify(jwt)


def test_participant_info_maps_kind_permissions_and_tracks():
    p = _participant("caller", kind=participant_pb2.PARTICIPANT_KIND_SIP, tracks={"TR_mic": _mic(muted=True)},
                     can_publish=True, can_subscribe=True)
    info = participant_info(p)
    assert info.kind == "sip"
    assert info.permissions["can_publish"] is True and info.permissions["can_publish_data"] is False
    assert info.tracks == [{"sid": "TR_mic", "name": "mic", "kind": "audio", "source": "microphone",
                            "muted": True, "subscribed": True}]
    assert (info.identity, info.sid, info.name, info.metadata) == ("caller", "PA_1", "Caller", '{"plan":"pro"}')
    assert info.attributes == {"lang": "en"} and info.connection_state == "connected"
    assert participant_info(_participant("bot", kind=participant_pb2.PARTICIPANT_KIND_AGENT)).kind == "agent"


@pytest.mark.asyncio
async def test_join_and_leave_map_to_events_participants_and_session_end():
    from .conftest import Recorder

    rec = Recorder()
    # the mapper only talks to the session, so a started local session stands in for the room
    session = AgentSession(options=SessionOptions(), llm=FakeLLM(), sink=rec, transport=LocalTransport())
    await session.start()
    mapper = RoomEventMapper(session)
    other_agent = _participant("agent-other", kind=participant_pb2.PARTICIPANT_KIND_AGENT, sid="PA_0")
    user = _participant("alice", sid="PA_2", tracks={"TR_mic": _mic()}, can_publish=True)
    mapper.connected(other_agent)
    mapper.connected(user)
    assert mapper.linked == "alice"  # the agent talks to the first standard/SIP participant
    assert set(session.participants) == {"agent-other", "alice"}
    joined = rec.of("participant_joined")
    assert [e.participant.identity for e in joined] == ["agent-other", "alice"]
    assert joined[1].participant.tracks[0]["kind"] == "audio"

    user.track_publications["TR_cam"] = SimpleNamespace(sid="TR_cam", name="cam", kind=rtc.TrackKind.KIND_VIDEO,
                                                        source=rtc.TrackSource.SOURCE_CAMERA, muted=False,
                                                        subscribed=False)
    mapper.updated(user)
    assert [t["sid"] for t in session.participants["alice"].tracks] == ["TR_mic", "TR_cam"]

    mapper.disconnected(other_agent, "left")
    assert session.closed is False and "agent-other" not in session.participants
    mapper.disconnected(user, "disconnected")
    left = rec.of("participant_left")[-1]
    assert left.participant.identity == "alice" and left.participant.connection_state == "disconnected"
    assert left.reason == "disconnected"
    assert await asyncio.wait_for(session.wait_closed(), 5) == "participant_left"


@pytest.mark.asyncio
async def test_chat_text_from_the_linked_participant_becomes_user_input():
    from .conftest import Recorder

    rec = Recorder()
    session = AgentSession(options=SessionOptions(), llm=FakeLLM(), sink=rec, transport=LocalTransport())
    await session.start()
    mapper = RoomEventMapper(session, participant_identity="bob")
    mapper.connected(_participant("alice"))
    mapper.connected(_participant("bob"))
    assert mapper.linked == "bob"
    mapper.chat("ignore me", "alice")
    mapper.chat("hello agent", "bob")
    texts = rec.of("text_received")
    assert [(t.text, t.participant_identity, t.source) for t in texts] == [("hello agent", "bob", "transport")]
    await session.stop()


@pytest.mark.asyncio
async def test_connect_uses_the_real_room_and_fails_cleanly_without_a_server():
    from .conftest import Recorder

    rec = Recorder()
    token = mint_agent_token(api_key="k", api_secret=SECRET, room="r", job_id="1")
    transport = LiveKitTransport(url="ws://127.0.0.1:9", token=token)
    session = AgentSession(options=SessionOptions(), llm=FakeLLM(), sink=rec, transport=transport)
    with pytest.raises(rtc.ConnectError):
        await session.start()
    assert isinstance(transport.room, rtc.Room)
    assert session.status == "error" and session.closed
    assert rec.first("error").source == "transport"
    assert rec.first("session_stopped").reason == "transport_error"


@pytest.mark.asyncio
async def test_agent_audio_goes_into_a_real_audio_source_and_clear_drops_it():
    import numpy as np

    transport = LiveKitTransport(url="ws://unused", token="unused", output_queue_ms=400)
    transport._source = rtc.AudioSource(24000, 1, queue_size_ms=400)
    transport._spawn(transport._pump_audio(), "pump")
    frame = np.full(480, 1000, dtype=np.int16)
    for _ in range(10):
        transport.write_audio(frame, 24000)
    for _ in range(50):
        if transport._out_q.empty():
            break
        await asyncio.sleep(0.01)
    assert transport._source.queued_duration > 0.1  # 200 ms handed to WebRTC's paced source
    for _ in range(5):
        transport.write_audio(frame, 24000)
    transport.clear_audio()
    assert transport._out_q.empty() and transport._source.queued_duration == 0
    await transport.aclose()


@pytest.mark.asyncio
async def test_subscribed_audio_frames_reach_the_session_and_chat_streams_become_text():
    import numpy as np

    from .conftest import Recorder

    class FakeStream:  # what rtc.AudioStream yields: events with a .frame
        def __init__(self, frames):
            self.frames = frames
            self.closed = False

        def __aiter__(self):
            return self._gen()

        async def _gen(self):
            for f in self.frames:
                yield SimpleNamespace(frame=f)

        async def aclose(self):
            self.closed = True

    class FakeReader:
        async def read_all(self):
            return "typed hello"

    rec = Recorder()
    session = AgentSession(options=SessionOptions(), llm=FakeLLM(), sink=rec, transport=LocalTransport())
    await session.start()
    transport = LiveKitTransport(url="ws://unused", token="unused")
    transport.session = session
    transport.mapper = RoomEventMapper(session)
    frames = [rtc.AudioFrame(np.zeros(960, np.int16).tobytes(), 48000, 1, 960) for _ in range(60)]
    stream = FakeStream(frames)
    await transport._read_audio(stream)
    assert stream.closed and session.audio_state.frames_received == 60
    assert session.audio_state.sample_rate == 48000
    transport._on_chat_stream(FakeReader(), "alice")
    await rec.wait_for("text_received")
    assert rec.first("text_received").text == "typed hello"
    await session.stop()


@pytest.mark.asyncio
async def test_transcription_attributes_name_the_transcribed_track():
    from sessions.runtime.transports.livekit import transcription_attributes

    session = AgentSession(options=SessionOptions(), llm=FakeLLM(), transport=LocalTransport())
    await session.start()
    transport = LiveKitTransport(url="ws://unused", token="unused")
    transport.session = session
    transport.mapper = RoomEventMapper(session)
    transport.mapper.connected(_participant("alice", tracks={"TR_mic": _mic()}))
    transport._track = SimpleNamespace(sid="TR_agent")
    user = transcription_attributes(transport, speaker="user", final=True)
    agent = transcription_attributes(transport, speaker="agent", final=False)
    assert user["lk.transcribed_track_id"] == "TR_mic" and user["lk.transcription_final"] == "true"
    assert agent["lk.transcribed_track_id"] == "TR_agent" and agent["lk.transcription_final"] == "false"
    assert user["lk.segment_id"] != agent["lk.segment_id"]
    await session.stop()
