"""A simulated caller inside the session's own process, on the local transport (load tests).

It plays a recorded utterance into the session at real-time pace on the shared clock, one
20 ms frame a tick, with silence frames between utterances as a real microphone sends; it
hears the agent through the transport's output tap and, when the agent's reply is over,
speaks again, until its duration is up. Per call it measures:

- reply latency: the end of the caller's speech (its last frame pushed) → the first audible
  frame of the agent's answer written to the transport, as a caller would hear it;
- input frame lag: how late each caller frame was pushed behind its tick (the loop's lag);
- output frame lag: how late each agent frame left behind the playout's real-time grid.

The figures are emitted once, as a `caller_report` event, when the caller stops. Django-free:
`sessions` builds it from the job's options and hosts it.
"""
from __future__ import annotations

import asyncio
import base64
import bisect
import io
import math
import wave
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .audio import resample_to
from .clock import Ticker
from .events import CallerReport
from .providers.espeak import EspeakTTS

RATE = 16000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000
AUDIBLE_RMS = 100.0  # int16 RMS above which an agent frame counts as speech, not silence
MAX_TEXT_CHARS = 500
MAX_WAV_BYTES = 2_000_000  # base64-decoded; about a minute of 16 kHz PCM16


class SimulatedCallerConfig(BaseModel):
    """Job metadata `simulated_caller`: what the caller says and for how long it calls."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT_CHARS,
                             description="spoken by espeak-ng on the worker (rendered once per process)")
    wav_base64: str | None = Field(default=None, description="a mono 16-bit PCM WAV, base64")
    duration_s: float = Field(default=30.0, ge=1.0, le=3600.0, description="the call ends this long after it began")
    reply_timeout_s: float = Field(default=15.0, gt=0, le=120.0, description="no reply by then: counted missing")
    reply_done_gap_s: float = Field(default=0.8, gt=0, le=10.0, description="agent silent this long: its reply is over")
    end_call: bool = Field(default=True, description="end the session when the duration is up")

    @model_validator(mode="after")
    def _one_source(self) -> "SimulatedCallerConfig":
        if (self.text is None) == (self.wav_base64 is None):
            raise ValueError("give exactly one of text or wav_base64")
        return self


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """(int16 mono samples, rate) of a WAV; ValueError saying what is wrong with it."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            pcm = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a WAV file: {exc}") from None
    if width != 2:
        raise ValueError("only 16-bit PCM WAV is supported")
    if channels != 1:
        raise ValueError(f"the caller speaks mono; this WAV has {channels} channels")
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
    if samples.size == 0:
        raise ValueError("the WAV holds no audio")
    return samples, rate


# lag histogram bucket upper edges (ms): 0.5 ms steps to 30 ms (the figures that matter are
# p99 < 20 ms), then coarser; the last bucket holds everything beyond 1 s. Counts, not a list
# of samples: a long call keeps a fixed size, and reports from many calls add up.
LAG_EDGES_MS: tuple[float, ...] = (*(i / 2 for i in range(1, 61)), 35, 40, 50, 60, 80, 100, 150, 200, 300, 500, 1000,
                                   float("inf"))


class LagHistogram:
    def __init__(self) -> None:
        self.counts = [0] * len(LAG_EDGES_MS)
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        self.counts[bisect.bisect_left(LAG_EDGES_MS, ms)] += 1
        if ms > self.max_ms:
            self.max_ms = ms

    @property
    def n(self) -> int:
        return sum(self.counts)


def histogram_pct(counts: list[int], p: float) -> float | None:
    """The bucket edge at or below which `p` % of the samples lie (nearest rank); None if empty."""
    total = sum(counts)
    if not total:
        return None
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for edge, count in zip(LAG_EDGES_MS, counts):
        seen += count
        if seen >= rank:
            return edge if edge != float("inf") else 1000.0
    return None


_rendered: dict[str, np.ndarray] = {}
_rendering: dict[str, asyncio.Future[np.ndarray]] = {}


async def caller_speech(config: SimulatedCallerConfig) -> np.ndarray:
    """What the caller says, as 16 kHz int16 mono. Text is rendered by espeak-ng once per
    process (hundreds of callers of one load test say the same thing); ValueError for a
    WAV that will not do, ProviderError when espeak-ng is missing or fails."""
    if config.wav_base64 is not None:
        samples, rate = decode_wav(base64.b64decode(config.wav_base64, validate=True))
        return resample_to(samples, rate, RATE).astype(np.int16, copy=False)
    text = config.text or ""
    if text in _rendered:
        return _rendered[text]
    pending = _rendering.get(text)
    if pending is None or pending.get_loop() is not asyncio.get_running_loop():
        pending = _rendering[text] = asyncio.get_running_loop().create_future()
        try:
            chunks = [chunk async for chunk in EspeakTTS(sample_rate=RATE).synthesize(text)]
            speech = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, dtype=np.int16)
            if speech.size == 0:
                raise ValueError("espeak-ng rendered no audio for the caller's text")
        except BaseException as exc:
            _rendering.pop(text, None)
            pending.set_exception(exc)
            pending.exception()  # retrieved: the waiters (if any) re-raise it
            raise
        _rendered[text] = speech
        _rendering.pop(text, None)
        pending.set_result(speech)
        return speech
    return await asyncio.shield(pending)


class SimulatedCaller:
    """One caller. Wire `heard` as the transport's audio tap, then `await run(session)`."""

    def __init__(self, speech: np.ndarray, config: SimulatedCallerConfig, *, ticker: Ticker | None = None) -> None:
        self.speech = speech.astype(np.int16, copy=False)  # 16 kHz mono
        self.config = config
        self._ticker = ticker
        self._silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        # the utterance as whole 20 ms frames (the last one padded with silence), cut once:
        # per tick the caller hands one over, no slicing or padding per frame
        padded = np.zeros(max(1, -(-self.speech.size // FRAME_SAMPLES)) * FRAME_SAMPLES, dtype=np.int16)
        padded[:self.speech.size] = self.speech
        padded.flags.writeable = False  # shared by every utterance: nobody writes into it
        self._frames = [padded[i:i + FRAME_SAMPLES] for i in range(0, padded.size, FRAME_SAMPLES)]
        self._scratch = np.zeros(0, dtype=np.float32)
        self.session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # what the caller is doing: "greeting" (let a greeting finish), "speaking", "waiting"
        # (for the reply to begin), "listening" (until the reply is over)
        self.phase = "greeting"
        self._pos = 0  # the next frame of the utterance
        self._spoke_at = 0.0  # loop time of the last frame of the utterance
        self._phase_at = 0.0
        self.last_audio_at = 0.0  # loop time of the agent's last audible frame
        self.utterances = 0
        self.reply_ms: list[float] = []
        self.missing_replies = 0
        self.in_lag = LagHistogram()
        self.out_lag = LagHistogram()
        self.agent_frames = 0

    # -- the agent's audio (the transport's on_audio; on the session's loop) -------------------
    def heard(self, frame: np.ndarray, rate: int) -> None:
        if self._loop is None:
            return
        now = self._loop.time()
        self.agent_frames += 1
        playout = getattr(self.session, "playout", None)
        if playout is not None and playout._sub is not None:
            # as bench/pipeline.py: frame k (k >= 1) is due on the k-th tick after the playout's
            # grid start, frame 0 at once
            expected = playout._start_t + max(0, playout._frames_sent - 1) * playout.frame_s
            self.out_lag.add(max(0.0, now - expected) * 1000)
        if frame.size and self._audible(frame):
            self.last_audio_at = now
            if self.phase == "waiting":
                self.reply_ms.append(max(0.0, now - self._spoke_at) * 1000)
                self._enter("listening", now)

    def _audible(self, frame: np.ndarray) -> bool:
        """RMS above AUDIBLE_RMS, as a sum of squares in a reused float32 buffer: per agent
        frame of every call, a fifth of the cost of sqrt(mean(x ** 2)) with its temporaries."""
        x = self._scratch
        if x.size != frame.size:
            x = self._scratch = np.empty(frame.size, dtype=np.float32)
        np.copyto(x, frame)
        return float(np.dot(x, x)) > AUDIBLE_RMS * AUDIBLE_RMS * frame.size

    def cleared(self) -> None:
        """The agent was interrupted: whatever it was saying is cut."""

    # -- the caller's side -----------------------------------------------------------------------
    def _enter(self, phase: str, now: float) -> None:
        self.phase, self._phase_at = phase, now

    def _next_frame(self, now: float) -> np.ndarray:
        cfg = self.config
        if self.phase == "greeting":
            # a greeting (if any) plays out first; without one the caller speaks after 1 s
            quiet_since = max(self.last_audio_at, self._phase_at)
            if now - quiet_since > (cfg.reply_done_gap_s if self.last_audio_at else 1.0):
                self._enter("speaking", now)
                self._pos = 0
        elif self.phase == "waiting" and now - self._spoke_at > cfg.reply_timeout_s:
            self.missing_replies += 1
            self._enter("speaking", now)
            self._pos = 0
        elif self.phase == "listening" and now - self.last_audio_at > cfg.reply_done_gap_s:
            self._enter("speaking", now)
            self._pos = 0
        if self.phase != "speaking":
            return self._silence
        frame = self._frames[self._pos]
        self._pos += 1
        if self._pos >= len(self._frames):
            self.utterances += 1
            self._spoke_at = now
            self._enter("waiting", now)
        return frame

    async def run(self, session: Any, push: Callable[[np.ndarray, int], None] | None = None) -> CallerReport:
        """Speak into `session` (through `push`, by default `session.push_audio`) until the
        duration is up or the session closes; the report, also emitted on the session."""
        self.session = session
        loop = self._loop = asyncio.get_running_loop()
        push = push or session.push_audio
        clock = self._ticker or Ticker.shared(FRAME_MS / 1000)
        done: asyncio.Future[None] = loop.create_future()
        start = loop.time()
        self._enter("greeting", start)
        sub = 0
        # looked up once: the tick runs 50 times a second for every caller of the process
        ends_at, now_of, lag_add, next_frame = start + self.config.duration_s, loop.time, self.in_lag.add, self._next_frame

        def tick(scheduled: float) -> None:
            now = now_of()
            if now >= ends_at or session.closed:
                clock.remove(sub)
                if not done.done():
                    done.set_result(None)
                return
            lag_add((now - scheduled) * 1000 if now > scheduled else 0.0)
            push(next_frame(now), RATE)

        sub = clock.add(tick)
        try:
            await done
        finally:
            clock.remove(sub)
        if self.phase == "waiting":
            self.missing_replies += 1  # asked, and the call ended before any answer
        report = self.report(loop.time() - start)
        if not session.closed:
            session.emit(report)
        return report

    def report(self, seconds: float) -> CallerReport:
        return CallerReport(
            duration_s=round(seconds, 2), utterances=self.utterances, replies=len(self.reply_ms),
            missing_replies=self.missing_replies, reply_ms=[round(v, 1) for v in self.reply_ms],
            in_lag_p50_ms=histogram_pct(self.in_lag.counts, 50), in_lag_p99_ms=histogram_pct(self.in_lag.counts, 99),
            in_lag_max_ms=round(self.in_lag.max_ms, 2), in_lag_counts=self.in_lag.counts,
            out_lag_p50_ms=histogram_pct(self.out_lag.counts, 50), out_lag_p99_ms=histogram_pct(self.out_lag.counts, 99),
            out_lag_max_ms=round(self.out_lag.max_ms, 2), out_lag_counts=self.out_lag.counts,
            lag_edges_ms=[e if e != float("inf") else -1 for e in LAG_EDGES_MS],
        )
