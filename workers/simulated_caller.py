"""A simulated caller: dispatches one load-test call through the public API, speaks a WAV into
it at real-time pace, records the agent's audio, and counts events.

It is only a client of the deployment (HTTP, the session's event socket, and the call's
audio path), so it measures what a caller would meet, embedded or distributed, and imports
nothing of Django. The audio path is a `CallerTransport`: the session's audio socket here
(`AUDIO_SOCKET`, local transport), or a LiveKit room participant
(`workers.simulated_caller_livekit`); the speaking and the measuring are the same for both.

Per call it records: the POST's time, dispatch → session live (the job shows its session),
caller-perceived reply latency (last frame of caller speech sent → first audible frame of
the agent received), the agent's downlink frame lag (how far each frame of a reply arrives
behind the reply's own real-time schedule), and events stored vs received on the event socket.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import numpy as np
import websockets

FRAME_MS = 20
RATE = 16000
FRAME_SAMPLES = RATE * FRAME_MS // 1000
AUDIBLE_RMS = 100.0  # int16 RMS above which an agent frame counts as speech, not silence
REPLY_TIMEOUT_S = 15.0  # a reply not started by then counts as missing
REPLY_DONE_GAP_S = 0.8  # no agent audio for this long: the reply is over
# a pause this long inside a reply (the next sentence still being synthesised) starts a new
# real-time schedule for the frame-lag figure: lag measures delivery, not synthesis speed
SEGMENT_GAP_S = 0.25
SESSION_START_TIMEOUT_S = 60.0
EVENTS_SETTLE_S = 15.0  # after the cancel, how long the stored and the received events may take to agree


@dataclass
class CallResult:
    job_id: str = ""
    session_id: str = ""
    post_ms: float | None = None
    start_ms: float | None = None
    reply_ms: list[float] = field(default_factory=list)
    missing_replies: int = 0
    frame_lag_ms: list[float] = field(default_factory=list)
    events_stored: int = 0
    events_received: int = 0
    events_lost: int = 0
    events_duplicated: int = 0
    error: str = ""

    @property
    def started(self) -> bool:
        return bool(self.session_id)


@dataclass
class CallPlan:
    base_url: str
    api_key: str
    agent: str
    speech: np.ndarray  # int16 mono at RATE
    duration_s: float
    room: str


class CallerAudio(Protocol):
    """The caller's open audio path: `send` one 20 ms frame of its microphone (int16 mono at
    RATE); the agent's audio goes into the `Downlink` the path was opened with."""

    async def send(self, pcm: bytes) -> None: ...


class CallerTransport(Protocol):
    """How a simulated caller reaches its session: the job's transport, the dispatch fields it
    needs, and its audio path once the session is live."""

    name: str  # the job's `transport`

    def job_fields(self, plan: CallPlan) -> dict[str, Any]: ...

    def open(self, plan: CallPlan, result: CallResult, client: httpx.AsyncClient,
             downlink: Downlink) -> AbstractAsyncContextManager[CallerAudio]: ...


def ws_url(base_url: str, path: str) -> str:
    return ("wss://" if base_url.startswith("https://") else "ws://") + base_url.split("://", 1)[1].rstrip("/") + path


def _origin(base_url: str) -> Any:
    return base_url.rstrip("/")


class Downlink:
    """Agent audio as it arrives: when each audible reply began and how late its frames came."""

    def __init__(self) -> None:
        self.reply_started = asyncio.Event()
        self.reply_start_at = 0.0
        self.last_audio_at = 0.0
        self._turn_start = 0.0
        self._turn_audio_s = 0.0
        self.lags_ms: list[float] = []
        self.rate = 24000

    def frame(self, pcm: bytes) -> None:
        now = time.monotonic()
        samples = np.frombuffer(pcm, dtype="<i2")
        duration = len(samples) / self.rate
        audible = len(samples) > 0 and float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > AUDIBLE_RMS
        if now - self.last_audio_at > SEGMENT_GAP_S:  # a new reply or sentence: its schedule starts now
            self._turn_start, self._turn_audio_s = now, 0.0
        # the segment's first frame is on its own schedule (lag 0) by definition
        self.lags_ms.append(max(0.0, (now - (self._turn_start + self._turn_audio_s)) * 1000))
        self._turn_audio_s += duration
        self.last_audio_at = now
        if audible and not self.reply_started.is_set():
            self.reply_start_at = now
            self.reply_started.set()


async def _events_listener(plan: CallPlan, result: CallResult, seqs: list[int], stop: asyncio.Event) -> None:
    """The session's event socket, as the dashboard follows it: a dropped socket reconnects
    with `after_seq` (the last seq received), and the server replays what it missed."""
    headers = {"Authorization": f"Bearer {plan.api_key}"}
    while not stop.is_set():
        path = f"/ws/sessions/{result.session_id}/?after_seq={max(seqs, default=0)}"
        try:
            async with websockets.connect(ws_url(plan.base_url, path), additional_headers=headers,
                                          origin=_origin(plan.base_url), max_size=None) as ws:
                while not stop.is_set():
                    try:
                        message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    except TimeoutError:
                        continue
                    if message.get("type") == "events":
                        seqs.extend(e["seq"] for e in message["events"])
        except (OSError, websockets.WebSocketException, TimeoutError):
            await asyncio.sleep(0.5)  # reconnect


async def _speak(audio: CallerAudio, speech: np.ndarray) -> float:
    """Send the WAV at real-time pace, then return when its last frame went out."""
    start = time.monotonic()
    for i, offset in enumerate(range(0, len(speech), FRAME_SAMPLES)):
        frame = speech[offset:offset + FRAME_SAMPLES]
        if len(frame) < FRAME_SAMPLES:
            frame = np.pad(frame, (0, FRAME_SAMPLES - len(frame)))
        await asyncio.sleep(max(0.0, start + i * FRAME_MS / 1000 - time.monotonic()))
        await audio.send(frame.astype("<i2").tobytes())
    return time.monotonic()


async def _silence_until(audio: CallerAudio, done: Any, timeout_s: float) -> bool:
    """Keep the uplink alive with real-time silence (the VAD hears the pause) until `done()`."""
    silence = np.zeros(FRAME_SAMPLES, dtype="<i2").tobytes()
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < timeout_s:
        if done():
            return True
        i += 1
        await asyncio.sleep(max(0.0, start + i * FRAME_MS / 1000 - time.monotonic()))
        await audio.send(silence)
    return done()


class AudioSocketTransport:
    """The local transport: the session's audio WebSocket carries both directions."""

    name = "local"

    def job_fields(self, plan: CallPlan) -> dict[str, Any]:
        return {}

    @asynccontextmanager
    async def open(self, plan: CallPlan, result: CallResult, client: httpx.AsyncClient,
                   downlink: Downlink) -> AsyncIterator[CallerAudio]:
        headers = {"Authorization": f"Bearer {plan.api_key}"}
        url = ws_url(plan.base_url, f"/ws/sessions/{result.session_id}/audio/?rate={RATE}")
        # the Origin header: the server (AllowedHostsOriginValidator) refuses sockets without one
        async with websockets.connect(url, additional_headers=headers, origin=_origin(plan.base_url), max_size=None) as ws:

            async def receive() -> None:
                async for message in ws:
                    if isinstance(message, bytes):
                        downlink.frame(message)
                    else:
                        data = json.loads(message)
                        if data.get("type") == "format":
                            downlink.rate = int(data["rate"])

            ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if ready.get("type") != "ready":
                raise RuntimeError(f"audio socket said {ready!r} instead of ready")
            receiver = asyncio.create_task(receive())
            try:
                yield ws
            finally:
                receiver.cancel()


AUDIO_SOCKET = AudioSocketTransport()


async def _converse(plan: CallPlan, audio: CallerAudio, downlink: Downlink, result: CallResult, deadline: float) -> None:
    """Speak the WAV, wait for the reply (silence meanwhile, as a microphone sends), again until the deadline."""
    # let the greeting (if any) finish before the first question
    await _silence_until(audio, lambda: downlink.last_audio_at and time.monotonic() - downlink.last_audio_at > REPLY_DONE_GAP_S,
                         min(5.0, max(0.0, deadline - time.monotonic())))
    while time.monotonic() + len(plan.speech) / RATE + 1 < deadline:
        downlink.reply_started.clear()
        spoken_at = await _speak(audio, plan.speech)
        if await _silence_until(audio, downlink.reply_started.is_set, REPLY_TIMEOUT_S):
            result.reply_ms.append(max(0.0, (downlink.reply_start_at - spoken_at) * 1000))
        else:
            result.missing_replies += 1
        await _silence_until(audio, lambda: time.monotonic() - downlink.last_audio_at > REPLY_DONE_GAP_S,
                             max(0.0, deadline - time.monotonic()))
    await _silence_until(audio, lambda: False, max(0.0, deadline - time.monotonic()))


async def _stored_events(client: httpx.AsyncClient, session_id: str) -> list[tuple[int, str]]:
    """(seq, type) of every event stored for the session, in order."""
    events: list[tuple[int, str]] = []
    after = 0
    while True:
        response = await client.get(f"/api/v1/sessions/{session_id}/events/", params={"after_seq": after, "limit": 500})
        response.raise_for_status()
        page = response.json()["results"]
        if not page:
            return events
        events.extend((e["seq"], e["type"]) for e in page)
        after = events[-1][0]


async def run_call(plan: CallPlan, result: CallResult, transport: CallerTransport = AUDIO_SOCKET) -> CallResult:
    """One call from POST to cancel; failures are recorded in `result.error`, never raised."""
    headers = {"Authorization": f"Bearer {plan.api_key}"}
    async with httpx.AsyncClient(base_url=plan.base_url, headers=headers, timeout=30) as client:
        try:
            t0 = time.monotonic()
            response = await client.post("/api/v1/jobs/", json={"agent": plan.agent, "room": plan.room,
                                                                "transport": transport.name, "metadata": {"loadtest": True},
                                                                **transport.job_fields(plan)})
            result.post_ms = (time.monotonic() - t0) * 1000
            if response.status_code != 201:
                result.error = f"dispatch refused: {response.status_code} {response.text[:200]}"
                return result
            result.job_id = response.json()["job_id"]
            while not result.session_id:
                if time.monotonic() - t0 > SESSION_START_TIMEOUT_S:
                    result.error = "the session did not start"
                    return result
                job = (await client.get(f"/api/v1/jobs/{result.job_id}/")).json()
                if job.get("status") in ("failed", "cancelled", "completed"):
                    result.error = f"the job ended {job['status']} before its session went live: {job.get('failure_reason', '')}"
                    return result
                if job.get("session_id") and job.get("status") == "running":
                    result.session_id = job["session_id"]
                    result.start_ms = (time.monotonic() - t0) * 1000
                else:
                    await asyncio.sleep(0.05)
            deadline = t0 + plan.duration_s
            received: list[int] = []
            stop = asyncio.Event()
            listener = asyncio.create_task(_events_listener(plan, result, received, stop))
            try:
                downlink = Downlink()
                try:
                    async with transport.open(plan, result, client, downlink) as audio:
                        await _converse(plan, audio, downlink, result, deadline)
                finally:
                    result.frame_lag_ms = downlink.lags_ms
            finally:
                await client.post(f"/api/v1/jobs/{result.job_id}/cancel")
            # an event counts as lost only if the socket never delivers it: wait (bounded) for
            # the session's last event to be stored — `call_ended`, the end-of-call report the
            # worker writes once it has closed the session (the job shows `cancelled` as soon as
            # the cancel is asked for, before the session has stopped) — and to arrive
            stored: list[tuple[int, str]] = []
            wait_until = time.monotonic() + EVENTS_SETTLE_S
            while time.monotonic() < wait_until and not listener.done():
                stored = await _stored_events(client, result.session_id)
                if any(type_ == "call_ended" for _, type_ in stored) and {seq for seq, _ in stored} <= set(received):
                    break
                await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(listener, return_exceptions=True)
            stored = await _stored_events(client, result.session_id)  # the final record, after the socket closed
            stored_seqs = {seq for seq, _ in stored}
            result.events_stored, result.events_received = len(stored_seqs), len(set(received))
            result.events_lost = len(stored_seqs - set(received))
            result.events_duplicated = len(received) - len(set(received))
        except Exception as exc:  # noqa: BLE001 - one failed call is a figure, not the end of the test
            result.error = result.error or f"{type(exc).__name__}: {exc}"
    return result
