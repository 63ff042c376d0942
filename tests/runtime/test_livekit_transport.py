"""LiveKit transport: token minting (decoded and checked), the participant mapping, and the
transport itself against the LiveKit server double (signal v1 + WebRTC, in its own network
namespace): the caller's audio in, the agent's voice out, participants, chat and
transcriptions, the room deleted, the server gone, refused credentials, timeouts."""
from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from livekit import api, rtc
from livekit.rtc._proto import participant_pb2

from runtime.provider_configs import WebRTCVADConfig
from runtime import AgentSession, SessionOptions
from runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS
from runtime.transports.livekit import (
    LiveKitTransport,
    TransportAuthError,
    TransportTimeout,
    disconnect_reason,
    mint_agent_token,
    participant_info,
)
from tests.doubles.livekit_netns import LiveKitDoubleProcess

from tests.helpers import wait_for_async
from tests.runtime.helpers import Recorder, SpeechMaker

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




def test_disconnect_reasons_name_why_the_room_was_lost():
    assert disconnect_reason(rtc.DisconnectReason.CLIENT_INITIATED) is None  # our own leave
    assert disconnect_reason(rtc.DisconnectReason.ROOM_DELETED) == "room_deleted"
    assert disconnect_reason(rtc.DisconnectReason.UNKNOWN_REASON) == "livekit_unreachable"
    assert disconnect_reason(rtc.DisconnectReason.PARTICIPANT_REMOVED) == "participant_removed"


# --- against the LiveKit double ---------------------------------------------------------------
def _loud(track: dict[str, Any], threshold: float = 1000.0) -> list[float]:
    return [t for t, rms in zip(track["times"], track["rms"]) if rms > threshold]


def _reply_done(received: dict[str, Any], quiet_s: float = 0.6) -> dict[str, Any] | None:
    """What the caller received, once it heard agent audio followed by `quiet_s` of quiet."""
    if not received["tracks"]:
        return None
    track = next(iter(received["tracks"].values()))
    loud = _loud(track)
    return received if loud and track["times"][-1] - loud[-1] >= quiet_s else None


async def _until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll a blocking predicate (it asks the double's process) off the event loop."""
    return await wait_for_async(lambda: asyncio.to_thread(predicate), timeout=timeout, interval=0.1, what=what)


@pytest.fixture
async def call(livekit_double: LiveKitDoubleProcess, recorder: Recorder  # noqa: F811
               ) -> AsyncIterator[Callable[..., AgentSession]]:
    """Builds a session on a LiveKitTransport into room `r1` of the double (fake providers)."""
    sessions: list[AgentSession] = []

    def make(*, room: str = "r1", secret: str | None = None, identity: str | None = "caller",
             stt: str = "what is the weather", **transport_options: Any) -> AgentSession:
        token = mint_agent_token(api_key=livekit_double.api_key, api_secret=secret or livekit_double.api_secret,
                                 room=room, job_id="job-1")
        transport = LiveKitTransport(url=livekit_double.url, token=token, room=room, participant_identity=identity,
                                     **transport_options)
        session = AgentSession(options=SessionOptions(vad=WebRTCVADConfig(min_silence_ms=300)), llm=FakeLLM("It is sunny."),
                               stt=FakeSTT(stt), tts=FakeTTS(), sink=recorder, transport=transport)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        if not session.closed and session._closed is not None:
            await session.stop("test_over")


@pytest.mark.asyncio
async def test_the_caller_is_heard_and_hears_the_agent_over_webrtc(
    call: Callable[..., AgentSession], livekit_double: LiveKitDoubleProcess, recorder: Recorder,  # noqa: F811
    speech: SpeechMaker,
):
    lk = livekit_double.client
    await asyncio.to_thread(lk.add_caller, "r1", "caller")
    session = call()
    await session.start()
    assert session.status == "active" and session.room[0] == "r1" and session.room[1].startswith("RM_")
    await asyncio.to_thread(lk.speak, "r1", "caller", speech.wav("What is the weather like in Paris today?"))
    await recorder.wait_for("stt_result", timeout=20)
    assert session.audio_state.frames_received > 100  # 20 ms frames from the caller's WebRTC track
    await recorder.wait_for("turn_ended", timeout=20)
    received = await _until(lambda: _reply_done(lk.caller("r1", "caller")), what="the caller to hear the agent")
    track = next(iter(received["tracks"].values()))
    assert len(_loud(track)) * 0.02 > 0.4  # FakeTTS: 50 ms a character of "It is sunny."
    # both sides transcribed for the caller, each naming the track it transcribes
    streams = [s for s in received["text_streams"] if s["topic"] == "lk.transcription"]
    user = [s for s in streams if s["sender"] == "caller"]
    agent = [s for s in streams if s["sender"] == "agent-job-1"]
    assert user and user[-1]["text"] == "what is the weather"
    assert user[-1]["attributes"]["lk.transcribed_track_id"] == (await asyncio.to_thread(lk.room, "r1"))[
        "participants"][0]["tracks"][0]
    assert agent and "It is sunny." in " ".join(s["text"] for s in agent)
    assert agent[-1]["attributes"]["lk.transcribed_track_id"] == next(iter(received["tracks"]))


@pytest.mark.asyncio
async def test_participants_join_with_their_tracks_and_the_linked_callers_leave_ends_the_session(
    call: Callable[..., AgentSession], livekit_double: LiveKitDoubleProcess, recorder: Recorder,  # noqa: F811
):
    lk = livekit_double.client
    await asyncio.to_thread(lk.add_caller, "r1", "caller")
    session = call()
    await session.start()
    first = await recorder.wait_for("participant_joined")
    assert (first.participant.identity, first.participant.kind) == ("caller", "standard")
    assert first.participant.sid.startswith("PA_") and first.participant.connection_state == "connected"
    assert [t["kind"] for t in first.participant.tracks] == ["audio"]
    # a second participant joins later (a SIP leg): its join is reported with its tracks
    await asyncio.to_thread(lk.add_caller, "r1", "supervisor", kind="sip")
    second = await recorder.wait_for("participant_joined", count=2)
    assert (second.participant.identity, second.participant.kind) == ("supervisor", "sip")
    assert [t["source"] for t in second.participant.tracks] == ["microphone"]
    await asyncio.to_thread(lk.leave, "r1", "supervisor")
    left = await recorder.wait_for("participant_left")
    assert left.participant.identity == "supervisor" and left.participant.connection_state == "disconnected"
    assert not session.closed  # not the caller the agent talks to
    await asyncio.to_thread(lk.leave, "r1", "caller")
    assert await asyncio.wait_for(session.wait_closed(), 10) == "participant_left"
    assert [e.participant.identity for e in recorder.of("participant_joined")] == ["caller", "supervisor"]


@pytest.mark.asyncio
async def test_a_caller_back_within_the_grace_keeps_the_session(
    call: Callable[..., AgentSession], livekit_double: LiveKitDoubleProcess, recorder: Recorder,  # noqa: F811
):
    lk = livekit_double.client
    await asyncio.to_thread(lk.add_caller, "r1", "caller")
    session = call(leave_grace_s=3.0)
    await session.start()
    await asyncio.to_thread(lk.leave, "r1", "caller")
    await recorder.wait_for("participant_left")
    await asyncio.to_thread(lk.add_caller, "r1", "caller")
    await recorder.wait_for("participant_joined", count=2)
    await asyncio.sleep(3.5)
    assert not session.closed
    await asyncio.to_thread(lk.leave, "r1", "caller")
    started = time.monotonic()
    assert await asyncio.wait_for(session.wait_closed(), 10) == "participant_left"
    assert time.monotonic() - started >= 2.5  # the grace, then the end


@pytest.mark.asyncio
async def test_chat_from_the_caller_becomes_user_text(
    call: Callable[..., AgentSession], livekit_double: LiveKitDoubleProcess, recorder: Recorder,  # noqa: F811
):
    lk = livekit_double.client
    await asyncio.to_thread(lk.add_caller, "r1", "caller")
    await asyncio.to_thread(lk.add_caller, "r1", "bystander")
    session = call()
    await session.start()
    await asyncio.sleep(0.5)  # the data channels open just after the join
    await asyncio.to_thread(lk.chat, "r1", "bystander", "ignore me")
    await asyncio.to_thread(lk.chat, "r1", "caller", "hello agent")
    text = await recorder.wait_for("text_received")
    assert (text.text, text.participant_identity, text.source) == ("hello agent", "caller", "transport")
    await asyncio.sleep(0.3)
    assert len(recorder.of("text_received")) == 1
    await session.stop()


@pytest.mark.asyncio
async def test_the_room_deleted_server_side_ends_the_session_room_deleted(
    call: Callable[..., AgentSession], livekit_double: LiveKitDoubleProcess, recorder: Recorder,  # noqa: F811
):
    await asyncio.to_thread(livekit_double.client.add_caller, "r1", "caller")
    session = call()
    await session.start()
    await asyncio.to_thread(livekit_double.client.delete_room, "r1")
    assert await asyncio.wait_for(session.wait_closed(), 10) == "room_deleted"
    assert not recorder.of("reconnecting")  # no retry: the room is gone for good


@pytest.mark.asyncio
async def test_the_server_gone_reconnects_then_ends_within_the_reconnect_timeout(
    call: Callable[..., AgentSession], livekit_double: LiveKitDoubleProcess, recorder: Recorder,  # noqa: F811
):
    await asyncio.to_thread(livekit_double.client.add_caller, "r1", "caller")
    session = call(reconnect_timeout_s=4.0)
    await session.start()
    livekit_double.vanish()
    await recorder.wait_for("reconnecting", timeout=15)
    gone = time.monotonic()
    assert await asyncio.wait_for(session.wait_closed(), 15) == "livekit_unreachable"
    assert time.monotonic() - gone < 6.0
    error = [e for e in recorder.of("error") if e.source == "transport"][-1]
    assert "could not be reached again within 4s" in error.message and not error.recoverable


@pytest.mark.asyncio
async def test_a_dropped_signal_connection_is_reconnected(
    call: Callable[..., AgentSession], livekit_double: LiveKitDoubleProcess, recorder: Recorder,  # noqa: F811
):
    await asyncio.to_thread(livekit_double.client.add_caller, "r1", "caller")
    session = call()
    await session.start()
    await asyncio.to_thread(livekit_double.client.drop_signal, "r1", "agent-job-1")
    await recorder.wait_for("reconnecting", timeout=10)
    back = await recorder.wait_for("reconnected", timeout=20)
    assert back.downtime_ms > 0 and not session.closed
    assert [e.participant.identity for e in recorder.of("participant_joined")] == ["caller"]  # not twice


@pytest.mark.asyncio
async def test_a_refused_token_fails_with_an_authentication_error(
    call: Callable[..., AgentSession], recorder: Recorder,
):
    session = call(secret="not-the-secret-of-the-double-0123456789")
    with pytest.raises(TransportAuthError, match="LiveKit authentication failed joining the room: .*401"):
        await session.start()
    assert session.status == "error" and session.closed
    assert "authentication failed" in recorder.first("error").message
    assert recorder.first("session_stopped").reason == "transport_error"


@pytest.mark.asyncio
async def test_a_server_that_never_answers_the_join_times_out_with_a_clear_error(
    livekit_double: LiveKitDoubleProcess, recorder: Recorder,  # noqa: F811
):
    """A listener on the namespace's host side that accepts and then says nothing."""
    silent = await asyncio.start_server(lambda r, w: asyncio.sleep(30), livekit_double.netns.host_address, 0)
    port = silent.sockets[0].getsockname()[1]
    token = mint_agent_token(api_key="k", api_secret="s" * 40, room="r1", job_id="job-1")
    transport = LiveKitTransport(url=f"ws://{livekit_double.netns.host_address}:{port}", token=token,
                                 connect_timeout_s=1.0)
    session = AgentSession(options=SessionOptions(), llm=FakeLLM(), sink=recorder, transport=transport)
    try:
        with pytest.raises(TransportTimeout, match="timed out after 1s"):
            await session.start()
    finally:
        silent.close()
    assert "joining the LiveKit room" in recorder.first("error").message and session.status == "error"


@pytest.mark.asyncio
async def test_publishing_the_agents_voice_past_its_timeout_fails_with_a_clear_error(
    call: Callable[..., AgentSession], livekit_double: LiveKitDoubleProcess, recorder: Recorder,  # noqa: F811
):
    # the double confirms a publication in 10-30 ms: a 1 ms budget is always exceeded
    session = call(publish_timeout_s=0.001)
    with pytest.raises(TransportTimeout, match="publishing the agent's audio track timed out after 0.001s"):
        await session.start()
    assert session.status == "error" and session.closed
    error = recorder.first("error")
    assert error.source == "transport" and not error.recoverable
    assert "publishing the agent's audio track timed out" in error.message
    assert recorder.first("session_stopped").reason == "transport_error"
    # no half-joined agent is left in the room
    await _until(lambda: not (livekit_double.client.room("r1") or {}).get("participants"), what="the agent gone from r1")
