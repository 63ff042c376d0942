"""Media for the LiveKit server double's simulated callers, through aiortc.

- `CallerVoice`: the caller's microphone. A paced 20 ms audio track that plays queued
  speech (a WAV), then half a second of silence, then sends nothing until the next speech,
  as Opus DTX does (the receiver's jitter buffer plays silence meanwhile): twenty quiet
  callers cost the double next to nothing. Frames are stereo (left = right): aiortc
  up-mixes mono frames about 3 dB low.
- `Recorder`: what the caller hears. Reads every frame the agent's track delivers and keeps
  it with the wall-clock time it arrived, so a test can find when sound started and stopped.
"""
from __future__ import annotations

import asyncio
import fractions
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

RATE = 48000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
HANGOVER_FRAMES = 25  # silent frames sent after speech before the track goes quiet
TIME_BASE = fractions.Fraction(1, RATE)


def read_wav_48k_mono(path: str | Path) -> np.ndarray:
    """A 16-bit WAV as 48 kHz mono int16 (linear resampling is enough for speech tests)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAVs are supported")
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    if channels > 1:
        pcm = pcm.reshape(-1, channels)[:, 0]
    if rate != RATE:
        positions = np.arange(0, len(pcm), rate / RATE)
        pcm = np.interp(positions, np.arange(len(pcm)), pcm.astype(np.float64)).astype(np.int16)
    return pcm


@dataclass
class Utterance:
    samples: np.ndarray
    started_at: float = 0.0  # wall clock, set when its first frame is sent
    ended_at: float = 0.0  # wall clock, set when its last frame is sent


class CallerVoice(MediaStreamTrack):
    kind = "audio"

    def __init__(self, track_sid: str) -> None:
        super().__init__()
        self._id = track_sid  # the SDK reads the track sid from the msid's track id
        self._queue: list[Utterance] = []
        self._current: Utterance | None = None
        self._offset = 0
        self._pts = 0
        self._start: float | None = None
        self._quiet = 0  # silent frames sent since the last speech
        self._wake = asyncio.Event()
        self.spoken: list[Utterance] = []

    def speak(self, samples: np.ndarray) -> Utterance:
        utterance = Utterance(samples=samples)
        self._queue.append(utterance)
        self.spoken.append(utterance)
        self._wake.set()
        return utterance

    async def _until_speech(self) -> None:
        """Send nothing while quiet; on resuming, the timestamps jump by the time that passed."""
        self._wake.clear()
        if self._queue:
            return
        await self._wake.wait()
        assert self._start is not None
        behind = time.monotonic() - (self._start + self._pts / RATE)
        if behind > 0:
            self._pts += int(behind * RATE) // FRAME_SAMPLES * FRAME_SAMPLES

    def _next_samples(self) -> np.ndarray:
        out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        filled = 0
        while filled < FRAME_SAMPLES:
            if self._current is None:
                if not self._queue:
                    break
                self._current, self._offset = self._queue.pop(0), 0
                self._current.started_at = time.time()
            chunk = self._current.samples[self._offset:self._offset + FRAME_SAMPLES - filled]
            out[filled:filled + len(chunk)] = chunk
            filled += len(chunk)
            self._offset += len(chunk)
            if self._offset >= len(self._current.samples):
                self._current.ended_at = time.time()
                self._current = None
        return out

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        # real-time pacing: frame n leaves at start + n * 20 ms
        if self._start is None:
            self._start = time.monotonic()
        if self._current is None and not self._queue and self._quiet >= HANGOVER_FRAMES:
            await self._until_speech()
        delay = self._start + self._pts / RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        speaking = self._current is not None or bool(self._queue)
        mono = self._next_samples()
        self._quiet = 0 if speaking else self._quiet + 1
        stereo = np.repeat(mono, 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = RATE, self._pts, TIME_BASE
        self._pts += FRAME_SAMPLES
        return frame


@dataclass
class Recorder:
    """Every frame of one remote track as it arrived: (wall time, 48 kHz mono int16)."""

    track_sid: str = ""
    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)
    levels: list[float] = field(default_factory=list)  # RMS of each frame, computed once on arrival
    task: asyncio.Task[None] | None = None

    def start(self, track: MediaStreamTrack) -> None:
        self.task = asyncio.get_running_loop().create_task(self._read(track), name=f"record-{self.track_sid}")

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            pcm = frame.to_ndarray().reshape(-1)
            channels = len(frame.layout.channels)
            if channels > 1:
                pcm = pcm.reshape(-1, channels)[:, 0]
            if frame.sample_rate != RATE:
                positions = np.arange(0, len(pcm), frame.sample_rate / RATE)
                pcm = np.interp(positions, np.arange(len(pcm)), pcm.astype(np.float64))
            samples = pcm.astype(np.int16)
            self.frames.append((time.time(), samples))
            self.levels.append(float(np.sqrt(np.mean(samples.astype(np.float32) ** 2))) if len(samples) else 0.0)

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
