"""Call recording: both voices on one timeline in one file, memory bounded, stored, served, purged."""
from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from sessions.models import AgentSession, Recording
from sessions.recording import CallRecorder
from sessions.recording_files import recordings_purge
from runtime.transports import LocalTransport
from tests.doubles.openai_server import Reply, tone_pcm
from tests.runtime.conftest import make_session  # noqa: F401
from tests.sessions.recording_helpers import FakeClock, band_share, dbfs, read_mono

TONE_HZ = 220.0  # the OpenAI double's TTS voice


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.RECORDINGS_SPOOL_DIR = str(tmp_path / "spool")
    return tmp_path / "media"


@pytest.fixture
def row_s0(transactional_db: Any, active_agent: Any) -> AgentSession:
    """The row of the session make_session builds first (its id is "s0")."""
    return AgentSession.objects.create(session_id="s0", agent=active_agent, agent_version=active_agent.version,
                                       room_id="r")


async def test_a_recorded_call_holds_the_user_then_the_agent_for_the_calls_duration(
        make_session: Any, openai_double: Any, recorder: Any, speech: Any, media: Path, row_s0: AgentSession) -> None:  # noqa: F811
    row = row_s0
    openai_double.transcripts.push("Hello there, can you hear me?")
    openai_double.chat.push(Reply.message("Yes, I can hear you very well. How can I help today?"))
    transport = LocalTransport(record_audio=True)
    session = make_session(transport=transport)
    call = CallRecorder(row.session_id)
    session.add_audio_tap(call)
    first_out: list[float] = []
    session.on("audio_out_frame", lambda frame: first_out.append(time.monotonic()) if not first_out else None)
    started = time.monotonic()
    await session.start()

    user = speech.samples("Hello there, can you hear me?")
    await transport.play(user, 16000, realtime=True, tail_silence_ms=600)
    await recorder.wait_for("response_generated", timeout=20)
    await asyncio.sleep(0.5)
    await session.stop("test_done")
    ended = time.monotonic()
    stored = await asyncio.to_thread(call.close)

    assert stored is not None and call.dropped == 0
    samples, rate = read_mono(media / stored.file.name)
    assert rate == 16000
    assert samples.size / rate == pytest.approx(ended - started, abs=0.35)  # the whole call, silences included
    assert stored.duration_ms == pytest.approx(samples.size / rate * 1000, abs=1)
    user_span = samples[int(0.1 * rate): int(user.size / 16000 * rate)]
    agent_at = first_out[0] - started
    agent_ms = sum(e.duration_ms for e in recorder.of("tts_audio"))
    agent_span = samples[int((agent_at + 0.1) * rate): int((agent_at + agent_ms / 1000 - 0.1) * rate)]
    assert agent_at > user.size / 16000  # the agent answered after the user spoke
    assert dbfs(user_span) > -40 and dbfs(agent_span) > -30
    assert band_share(agent_span, rate, TONE_HZ) > 0.8  # the agent's voice (the double's tone) ...
    assert band_share(user_span, rate, TONE_HZ) < 0.2  # ... not in the user's span
    gap = samples[int((user.size / 16000 + 0.15) * rate): int((agent_at - 0.05) * rate)]
    assert dbfs(gap) < dbfs(user_span) - 20  # silence between the turns stays silence


def _simulate(call: CallRecorder, clock: FakeClock, seconds: float) -> None:
    """A call of alternating 2 s user and 2 s agent speech, frames arriving in real-time order."""
    user = (np.sin(np.arange(320) * 2 * np.pi * 440 / 16000) * 8000).astype(np.int16)
    agent = np.frombuffer(tone_pcm(0.02), dtype="<i2")
    frames = int(seconds / 0.02)
    for i in range(frames):
        clock.now += 0.02
        if (i // 100) % 2 == 0:
            call.user_audio(user, 16000)
        else:
            call.agent_audio(agent, 24000)
        if i % 5 == 4:
            call.pump()


@pytest.mark.django_db
def test_memory_held_by_a_recording_does_not_grow_with_the_calls_length(media: Path, active_agent: Any) -> None:
    held = {}
    for minutes in (1, 10):
        row = AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id="r")
        clock = FakeClock()
        call = CallRecorder(row.session_id, clock=clock, autostart=False)
        _simulate(call, clock, minutes * 60)
        held[minutes] = (call.max_mixer_samples, call.max_queued_seen)
        stored = call.close()
        assert stored is not None and stored.duration_ms == pytest.approx(minutes * 60_000, abs=100)
        samples, rate = read_mono(media / stored.file.name)
        assert samples.size == pytest.approx(minutes * 60 * rate, abs=rate // 10)
        assert dbfs(samples[rate * 2 + 800: rate * 4 - 800]) > -20  # an agent stretch, resampled from 24 kHz
    # what is held at once is bounded by the pump interval and the gap tolerance, not the length
    assert held[10] == held[1]
    assert held[10][0] < 16000 * 0.5 and held[10][1] <= 10


@pytest.mark.django_db
def test_a_full_queue_drops_frames_and_counts_them_instead_of_growing(media: Path, active_agent: Any) -> None:
    row = AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id="r")
    call = CallRecorder(row.session_id, clock=FakeClock(), max_queued=50, autostart=False)
    frame = np.zeros(320, dtype=np.int16)
    for _ in range(80):
        call.user_audio(frame, 16000)
    assert call.dropped == 30 and call.buffered_bytes == 50 * 640
    assert call.close().dropped_frames == 30


@pytest.fixture
def recorded(media: Path, active_agent: Any) -> Recording:
    row = AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id="r")
    clock = FakeClock()
    call = CallRecorder(row.session_id, clock=clock, autostart=False)
    _simulate(call, clock, 5)
    return call.close()


@pytest.mark.django_db
def test_the_api_streams_the_recording_with_the_read_scope_and_404s_without_one(
        recorded: Recording, active_agent: Any, api_key_factory: Any) -> None:
    from rest_framework.test import APIClient

    def client(*scopes: str) -> APIClient:
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_factory(*scopes)[1]}")
        return c

    url = f"/api/v1/sessions/{recorded.session_id}/recording"
    response = client("read").get(url)
    assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
    assert response.streaming
    body = b"".join(response.streaming_content)
    assert body[:4] == b"RIFF" and len(body) == recorded.size_bytes
    assert client("webhooks:write").get(url).status_code == 403
    assert APIClient().get(url).status_code == 401
    bare = AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id="r")
    missing = client("read").get(f"/api/v1/sessions/{bare.session_id}/recording")
    assert missing.status_code == 404 and "no recording" in missing.json()["detail"]
    assert client("read").get("/api/v1/sessions/ses_nobody/recording").status_code == 404


@pytest.mark.django_db
def test_recordings_past_the_retention_are_deleted_with_their_files(
        recorded: Recording, media: Path, settings: Any, active_agent: Any) -> None:
    path = media / recorded.file.name
    assert path.exists()
    settings.RECORDINGS_RETENTION_DAYS = 7
    assert recordings_purge() == 0
    Recording.objects.filter(pk=recorded.pk).update(created_at=timezone.now() - timedelta(days=8))
    settings.RECORDINGS_RETENTION_DAYS = 0  # 0 keeps everything
    assert recordings_purge() == 0 and path.exists()
    settings.RECORDINGS_RETENTION_DAYS = 7
    call_command("purge_recordings")
    assert not path.exists() and not Recording.objects.exists()
    assert AgentSession.objects.filter(pk=recorded.session_id).exists()


@pytest.mark.django_db
def test_a_range_request_gets_that_slice_so_the_player_can_seek(recorded: Recording, api_key_factory: Any) -> None:
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_factory('read')[1]}")
    url = f"/api/v1/sessions/{recorded.session_id}/recording"
    whole = b"".join(client.get(url).streaming_content)
    part = client.get(url, HTTP_RANGE="bytes=1000-1999")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 1000-1999/{len(whole)}"
    assert b"".join(part.streaming_content) == whole[1000:2000]
    tail = client.get(url, HTTP_RANGE="bytes=-44")
    assert tail.status_code == 206 and b"".join(tail.streaming_content) == whole[-44:]
    beyond = client.get(url, HTTP_RANGE=f"bytes={len(whole) + 10}-")
    assert beyond.status_code == 200 and beyond["Accept-Ranges"] == "bytes"  # unusable range: the whole file
