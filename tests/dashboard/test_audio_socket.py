"""The session audio socket (`/ws/sessions/{id}/audio/`) through the real ASGI application:
who may open it, what it refuses, and PCM16 frames both ways over the in-memory layer, over
Redis to a session hosted here, and over Redis to a session hosted by another process."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission

from controlplane.scopes import READ, SESSIONS_CONTROL
from sessions.audio_link import AudioLink
from sessions.models import AgentSession
from tests.dashboard.helpers import in_thread
from tests.dashboard.live_server import ROOT
from tests.dashboard.test_consumers import closed_with, communicator, login_cookie
from tests.helpers import wait_for_async

pytestmark = pytest.mark.django_db(transaction=True)
FRAME = 320  # 20 ms at 16 kHz


def audio_path(session: AgentSession, query: str = "") -> str:
    return f"/ws/sessions/{session.session_id}/audio/{query}"


def tone(value: int = 1000) -> bytes:
    return np.full(FRAME, value, dtype="<i2").tobytes()


async def open_socket(session: AgentSession, user: Any) -> WebsocketCommunicator:
    comm = communicator(audio_path(session), await in_thread(login_cookie, user))
    connected, _ = await comm.connect()
    assert connected
    assert await comm.receive_json_from(timeout=5) == {"type": "ready", "rate": 16000, "frame_ms": 20}
    return comm


class Heard:
    """Where the session would be: what the link's transport pushes in."""

    def __init__(self) -> None:
        self.frames: list[tuple[bytes, int]] = []

    def push_audio(self, data: np.ndarray, sample_rate: int, channels: int = 1) -> None:
        self.frames.append((data.tobytes(), sample_rate))


@pytest.fixture
def in_memory_layer(settings: Any) -> Iterator[None]:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def redis_layer(settings: Any) -> Iterator[None]:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/1"]}}}
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


# -- who may open it -----------------------------------------------------------------------
async def test_anonymous_clients_are_refused_with_4401(live_session: AgentSession) -> None:
    assert await closed_with(communicator(audio_path(live_session))) == 4401


async def test_watching_is_not_enough_to_speak_into_a_session(live_session: AgentSession, django_user_model: Any,
                                                             api_key_factory: Any) -> None:
    def watcher() -> Any:
        user = django_user_model.objects.create_user(username="watcher", password="watcher-pass-123")
        user.user_permissions.add(Permission.objects.get(codename="view_agentsession"))
        return user

    cookie = await in_thread(login_cookie, await in_thread(watcher))
    assert await closed_with(communicator(audio_path(live_session), cookie)) == 4403
    _, read_only = await in_thread(api_key_factory, READ)
    assert await closed_with(communicator(audio_path(live_session, f"?token={read_only}"))) == 4403
    _, control = await in_thread(api_key_factory, READ, SESSIONS_CONTROL)
    comm = communicator(audio_path(live_session, f"?token={control}"))
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from(timeout=5))["type"] == "ready"
    await comm.disconnect()


async def test_unknown_ended_livekit_and_bad_rate_are_refused(live_session: AgentSession, ended_session: AgentSession,
                                                              operator: Any) -> None:
    cookie = await in_thread(login_cookie, operator)
    assert await closed_with(communicator("/ws/sessions/ses_nope/audio/", cookie)) == 4404
    assert await closed_with(communicator(audio_path(ended_session), cookie)) == 4409
    await in_thread(lambda: AgentSession.objects.filter(pk=live_session.pk).update(transport="livekit"))
    assert await closed_with(communicator(audio_path(live_session), cookie)) == 4409
    await in_thread(lambda: AgentSession.objects.filter(pk=live_session.pk).update(transport="local"))
    for rate in ("44100", "abc"):
        assert await closed_with(communicator(audio_path(live_session, f"?rate={rate}"), cookie)) == 4400


@pytest.mark.parametrize(("frame", "code"), [(b"\0" * 3202, 1009), (b"\0" * 641, 4400), (b"", 4400)])
async def test_a_bad_frame_closes_the_socket(live_session: AgentSession, operator: Any, frame: bytes, code: int) -> None:
    comm = await open_socket(live_session, operator)
    await comm.send_input({"type": "websocket.receive", "bytes": frame})
    message = await comm.receive_output(timeout=5)
    assert message == {"type": "websocket.close", "code": code}


# -- frames both ways ------------------------------------------------------------------------
async def _round_trip_here(session: AgentSession, user: Any) -> None:
    link = AudioLink(session.session_id)
    heard = Heard()
    link.transport.session = heard
    link.open()
    try:
        comm = await open_socket(session, user)
        await wait_for_async(link._heard, timeout=5)  # the socket's hello reached the link
        for i in range(5):
            await comm.send_to(bytes_data=tone(value=100 + i))
        await wait_for_async(lambda: len(heard.frames) == 5, timeout=5)
        assert [f[0] for f in heard.frames] == [tone(value=100 + i) for i in range(5)] and {f[1] for f in heard.frames} == {16000}

        out = np.zeros(480, dtype=np.int16)  # the runtime reuses its frame buffer: the link must copy
        for i in range(3):
            out[:] = 7 + i
            link.transport.write_audio(out, 24000)
        assert await comm.receive_json_from(timeout=5) == {"type": "format", "rate": 24000}
        expected = b"".join(np.full(480, 7 + i, dtype="<i2").tobytes() for i in range(3))
        got = b""
        while len(got) < len(expected):  # frames queued together travel together
            got += await comm.receive_from(timeout=5)
        assert got == expected
        # an interruption: frames not sent yet are of the interrupted speech and go nowhere
        out[:] = 99
        link.transport.write_audio(out, 24000)
        link.transport.clear_audio()
        assert await comm.receive_json_from(timeout=5) == {"type": "clear"}
        assert link.downlink.dropped == 0
        await comm.disconnect()
        await wait_for_async(lambda: not link._heard(), timeout=5)  # goodbye: nothing is sent to nobody
    finally:
        link.close()


async def test_frames_cross_the_in_memory_layer_both_ways_in_order(live_session: AgentSession, operator: Any,
                                                                    in_memory_layer: None) -> None:
    await _round_trip_here(live_session, operator)


async def test_frames_cross_redis_both_ways_in_order(live_session: AgentSession, operator: Any, redis_layer: None) -> None:
    await _round_trip_here(live_session, operator)


async def test_no_frames_are_sent_before_a_socket_says_hello(live_session: AgentSession, redis_layer: None) -> None:
    link = AudioLink(live_session.session_id)
    link.open()
    try:
        link.transport.write_audio(np.zeros(480, dtype=np.int16), 24000)
        await asyncio.sleep(0.05)
        assert link.downlink.sent == 0 and link.downlink.dropped == 0
    finally:
        link.close()


async def test_audio_faster_than_real_time_is_dropped_with_a_warning(live_session: AgentSession, operator: Any,
                                                                     in_memory_layer: None) -> None:
    link = AudioLink(live_session.session_id)
    heard = Heard()
    link.transport.session = heard
    link.open()
    try:
        comm = await open_socket(live_session, operator)
        for _ in range(150):  # 3 s of audio at once; the socket allows 1 s ahead of real time
            await comm.send_to(bytes_data=tone())
        assert (await comm.receive_json_from(timeout=5))["type"] == "warning"
        await asyncio.sleep(0.1)
        assert 45 <= len(heard.frames) <= 80, len(heard.frames)  # 1 s of credit, plus the time sending took
        await comm.disconnect()
    finally:
        link.close()


@pytest.mark.integration
async def test_frames_reach_a_session_in_another_process_and_come_back(live_session: AgentSession, operator: Any,
                                                                       redis_layer: None) -> None:
    """The production path: web here, the session's AudioLink in a worker process, Redis between."""
    peer = subprocess.Popen([sys.executable, "-m", "tests.dashboard.audio_peer", live_session.session_id], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "controlplane.settings"},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert peer.stdout is not None
        assert (await asyncio.to_thread(peer.stdout.readline)).strip() == b"ready"
        comm = await open_socket(live_session, operator)
        sent = [tone(value=200 + i) for i in range(10)]
        for frame in sent:
            await comm.send_to(bytes_data=frame)
        assert await comm.receive_json_from(timeout=10) == {"type": "format", "rate": 16000}
        got = b""
        while len(got) < len(b"".join(sent)):  # frames that queued together travel together
            got += await comm.receive_from(timeout=5)
        assert got == b"".join(sent)
        await comm.send_to(bytes_data=np.full(FRAME, -1, dtype="<i2").tobytes())
        assert await comm.receive_json_from(timeout=5) == {"type": "clear"}
        await comm.disconnect()
    finally:
        peer.communicate(timeout=10)

