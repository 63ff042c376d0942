"""Media for the LiveKit server double's simulated callers, through aiortc.

- `CallerVoice`: the caller's microphone. A 20 ms audio track paced by an absolute clock
  (frame n leaves at start + n × 20 ms) that plays queued speech (a WAV) and silence
  between, all the time, as a real microphone does. It used to send nothing after half a
  second of silence (a DTX of sorts, with no comfort-noise packets): then the agent's
  jitter buffer (NetEq) restarted at every question and stretched the speech to refill
  itself, so the agent heard the end of each question ~240 ms late (bench/livekit_calls.py
  at N=1: reply 576 ms → 332 ms with continuous frames). The track hands aiortc Opus
  packets it encoded itself, not PCM frames: each utterance once when it is queued, and one
  silence packet for all the silence. aiortc would otherwise encode every frame of every
  caller through a thread pool and compute its RFC 6465 audio level in a pure-Python loop
  over the samples on the event loop (~2 M iterations/s for twenty callers): the double's
  loop then ran 100-200 ms late and the callers' audio reached the agent in bursts. Speech is
  encoded stereo (left = right): aiortc up-mixes mono about 3 dB low.
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


def opus_packets(pcm: np.ndarray, *, tail_frames: int = 2) -> list[bytes]:
    """48 kHz mono int16 as 20 ms Opus packets (stereo, left = right), with `tail_frames` of
    silence after it so the encoder's look-ahead is flushed inside the utterance."""
    codec = av.CodecContext.create("libopus", "w")
    codec.bit_rate, codec.format, codec.layout = 64000, "s16", "stereo"
    codec.sample_rate, codec.time_base, codec.options = RATE, TIME_BASE, {"application": "voip"}
    frames = -(-len(pcm) // FRAME_SAMPLES) + tail_frames
    padded = np.zeros(frames * FRAME_SAMPLES, dtype=np.int16)
    padded[:len(pcm)] = pcm
    packets: list[bytes] = []
    for i in range(frames):
        chunk = padded[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]
        frame = av.AudioFrame.from_ndarray(np.repeat(chunk, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = RATE, i * FRAME_SAMPLES, TIME_BASE
        packets += [bytes(p) for p in codec.encode(frame)]
    return packets + [bytes(p) for p in codec.encode(None)]


SILENCE_PACKET = opus_packets(np.zeros(FRAME_SAMPLES * 8, dtype=np.int16))[6]  # past the encoder's start-up


@dataclass
class Utterance:
    samples: np.ndarray
    packets: list[bytes] = field(default_factory=list)
    started_at: float = 0.0  # wall clock, set when its first packet is sent
    ended_at: float = 0.0  # wall clock, set when the packet with its last sample is sent

    @property
    def speech_packets(self) -> int:
        return -(-len(self.samples) // FRAME_SAMPLES)


class CallerVoice(MediaStreamTrack):
    kind = "audio"

    def __init__(self, track_sid: str) -> None:
        super().__init__()
        self._id = track_sid  # the SDK reads the track sid from the msid's track id
        self._queue: list[Utterance] = []
        self._current: Utterance | None = None
        self._sent = 0  # packets of the current utterance sent
        self._pts = 0
        self._start: float | None = None
        self.spoken: list[Utterance] = []

    def speak(self, samples: np.ndarray, packets: list[bytes] | None = None) -> Utterance:
        """Queue speech; `packets` are its Opus packets if already encoded (`opus_packets`)."""
        utterance = Utterance(samples=samples, packets=packets if packets is not None else opus_packets(samples))
        self._queue.append(utterance)
        self.spoken.append(utterance)
        return utterance

    def _next_payload(self) -> bytes:
        if self._current is None:
            if not self._queue:
                return SILENCE_PACKET
            self._current, self._sent = self._queue.pop(0), 0
            self._current.started_at = time.time()
        utterance = self._current
        payload = utterance.packets[self._sent]
        self._sent += 1
        if self._sent == utterance.speech_packets:
            utterance.ended_at = time.time()
        if self._sent >= len(utterance.packets):
            self._current = None
        return payload

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        # real-time pacing by an absolute clock: packet n leaves at start + n * 20 ms (late
        # ones leave at once, as a microphone's buffered frames would)
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self._pts / RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self._next_payload())
        packet.pts, packet.time_base = self._pts, TIME_BASE
        self._pts += FRAME_SAMPLES
        return packet


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
