"""A simulated caller as a LiveKit room participant (`manage.py loadtest --transport livekit`).

The load-test process joins the job's room with `livekit.rtc` (libwebrtc, as a real client
does), publishes its microphone and subscribes to the agent's voice; the speaking and the
figures are `workers.simulated_caller`'s, the same as on the audio socket. Its join token is
minted here from the deployment's LiveKit API key and secret (as `lk load-test` does), for
that one room and identity; neither is logged or printed.

Two things differ from the audio socket and are handled here:
- the microphone: a 20 ms frame at a time, sent as stereo (left = right). A server that
  re-encodes through aiortc up-mixes mono frames about 3 dB low; stereo avoids it.
- the downlink: libwebrtc delivers a frame every 10 ms whether the agent speaks or not,
  where the audio socket carries only what the agent plays. The caller hands the figures
  only the agent's sound (and the short pauses inside it): frames above a silence floor, and
  the silent ones within SEGMENT_GAP_S after them. So a pause longer than that starts a new
  real-time schedule for the frame lag, and "no agent audio for a while" means the same.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import numpy as np
from livekit import api, rtc

from workers.simulated_caller import RATE, SEGMENT_GAP_S, CallerAudio, CallPlan, CallResult, Downlink

CALLER_IDENTITY = "loadtest-caller"
DOWNLINK_RATE = 24000
SILENCE_FLOOR_RMS = 10.0  # int16 RMS under which a received frame is the receiver's silence, not the agent
SESSION_CONNECTED_TIMEOUT_S = 60.0
_LIVE = ("connected", "active", "paused")
_OVER = ("disconnected", "error")


def caller_token(*, api_key: str, api_secret: str, room: str, identity: str,
                 ttl: timedelta = timedelta(hours=1)) -> str:
    """May join `room` only, publish a microphone and data, subscribe; nothing else."""
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True, can_publish_data=True,
                             can_publish_sources=["microphone"])
    return (api.AccessToken(api_key, api_secret).with_identity(identity).with_name(identity)
            .with_grants(grants).with_ttl(ttl).to_jwt())


def stereo(pcm: bytes) -> bytes:
    mono = np.frombuffer(pcm, dtype="<i2")
    return np.repeat(mono, 2).astype("<i2").tobytes()


class SpeechGate:
    """Which received frames are the agent's sound (see the module's docstring)."""

    def __init__(self, floor_rms: float = SILENCE_FLOOR_RMS, hangover_s: float = SEGMENT_GAP_S) -> None:
        self.floor_rms, self.hangover_s = floor_rms, hangover_s
        self._last_sound = float("-inf")

    def passes(self, pcm: bytes, now: float) -> bool:
        samples = np.frombuffer(pcm, dtype="<i2")
        if len(samples) and float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > self.floor_rms:
            self._last_sound = now
            return True
        return now - self._last_sound <= self.hangover_s


class _Microphone:
    def __init__(self, source: rtc.AudioSource) -> None:
        self.source = source

    async def send(self, pcm: bytes) -> None:
        await self.source.capture_frame(rtc.AudioFrame(stereo(pcm), RATE, 2, len(pcm) // 2))


@dataclass
class LiveKitCallerTransport:
    """The job's transport is `livekit`; the caller joins its room once the agent is there."""

    url: str
    api_key: str
    api_secret: str
    identity: str = CALLER_IDENTITY
    connect_timeout_s: float = 30.0
    name: str = "livekit"

    def __repr__(self) -> str:  # never the secret, whatever prints this
        return f"LiveKitCallerTransport(url={self.url!r}, identity={self.identity!r})"

    def job_fields(self, plan: CallPlan) -> dict[str, Any]:
        return {"participant_identity": self.identity}  # the agent listens to this participant

    async def _agent_in_room(self, client: httpx.AsyncClient, session_id: str) -> None:
        """The session is connected (its agent joined the room the job created): only then
        join, or the caller would create the room itself and the job would not own it."""
        deadline = time.monotonic() + SESSION_CONNECTED_TIMEOUT_S
        while True:
            response = await client.get(f"/api/v1/sessions/{session_id}/")
            response.raise_for_status()
            status = response.json()["status"]
            if status in _LIVE:
                return
            if status in _OVER:
                raise RuntimeError(f"the session ended {status} before its agent joined the room")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the agent did not join the room within {SESSION_CONNECTED_TIMEOUT_S:g}s")
            await asyncio.sleep(0.1)

    @asynccontextmanager
    async def open(self, plan: CallPlan, result: CallResult, client: httpx.AsyncClient,
                   downlink: Downlink) -> AsyncIterator[CallerAudio]:
        await self._agent_in_room(client, result.session_id)
        downlink.rate = DOWNLINK_RATE
        room = rtc.Room()
        readers: dict[str, asyncio.Task[None]] = {}

        async def hear(stream: rtc.AudioStream) -> None:
            gate = SpeechGate()
            try:
                async for event in stream:
                    pcm = bytes(event.frame.data)
                    if gate.passes(pcm, time.monotonic()):
                        downlink.frame(pcm)
            finally:
                await stream.aclose()

        def subscribed(track: rtc.Track, publication: Any, participant: rtc.RemoteParticipant) -> None:
            if track.kind == rtc.TrackKind.KIND_AUDIO and track.sid not in readers:
                stream = rtc.AudioStream(track, sample_rate=DOWNLINK_RATE, num_channels=1, frame_size_ms=20)
                readers[track.sid] = asyncio.get_running_loop().create_task(hear(stream), name=f"caller-hears-{track.sid}")

        def unsubscribed(track: rtc.Track, publication: Any, participant: rtc.RemoteParticipant) -> None:
            reader = readers.pop(track.sid, None)
            if reader is not None:  # an AudioStream does not end on unsubscribe: stop reading it
                reader.cancel()
            handle = getattr(track, "_ffi_handle", None)
            if handle is not None:  # released natively already (see runtime/transports/livekit.py)
                handle.mark_consumed()

        room.on("track_subscribed", subscribed)
        room.on("track_unsubscribed", unsubscribed)
        token = caller_token(api_key=self.api_key, api_secret=self.api_secret, room=plan.room, identity=self.identity)
        source = rtc.AudioSource(RATE, 2, queue_size_ms=100)
        try:
            try:
                await asyncio.wait_for(room.connect(self.url, token, rtc.RoomOptions(auto_subscribe=True)),
                                       self.connect_timeout_s)
            except TimeoutError:
                raise RuntimeError(f"joining the LiveKit room at {self.url} timed out after "
                                   f"{self.connect_timeout_s:g}s") from None
            for participant in room.remote_participants.values():  # already published before we joined
                for publication in participant.track_publications.values():
                    if publication.track is not None and publication.subscribed:
                        subscribed(publication.track, publication, participant)
            track = rtc.LocalAudioTrack.create_audio_track("loadtest-microphone", source)
            await asyncio.wait_for(room.local_participant.publish_track(
                track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)), self.connect_timeout_s)
            yield _Microphone(source)
        finally:
            for reader in readers.values():
                reader.cancel()
            if readers:
                await asyncio.wait(readers.values(), timeout=2.0)
            await source.aclose()
            await room.disconnect()

