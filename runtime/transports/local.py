"""In-memory transport: audio and text in and out, for tests, the playground, benchmarks
and the console command.

`on_audio(frame, rate)` and `on_clear()` let the owner forward the agent's paced audio
(the voice playground sends it to the browser); `on_audio` gets the reused frame buffer
and must copy what it keeps."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..clock import Ticker
from ..events import ParticipantInfo


class LocalTransport:
    name = "local"

    def __init__(self, *, record_audio: bool = False, max_record_s: float = 120.0,
                 on_text: Callable[[str], None] | None = None,
                 on_frame_lag: Callable[[float], None] | None = None,
                 on_audio: Callable[[np.ndarray, int], None] | None = None,
                 on_clear: Callable[[], None] | None = None,
                 participant: ParticipantInfo | None = None) -> None:
        self.session: Any = None
        # who is on the other end (the playground's operator, an API client): reported to the
        # session as joining on connect and leaving on close, as a room's participant would be
        self.participant = participant
        self.record_audio = record_audio
        self._max_record_s = max_record_s
        self.recorded: list[np.ndarray] = []
        self._recorded_samples = 0
        self.out_rate = 24000
        self.frames_out = 0
        self.last_frame_at: float | None = None  # perf_counter of the last frame written
        self.clears = 0
        self.texts_out: list[str] = []
        self.transcripts: list[tuple[str, str, bool]] = []
        self._on_text = on_text
        self._on_frame_lag = on_frame_lag
        self._on_audio = on_audio
        self._on_clear = on_clear
        self.closed = False

    # -- Transport protocol ---------------------------------------------------------------
    async def connect(self, session: Any) -> None:
        self.session = session
        if self.participant is not None:
            session.participant_joined(self.participant)

    def write_audio(self, frame: np.ndarray, sample_rate: int) -> None:
        self.out_rate = sample_rate
        self.frames_out += 1
        self.last_frame_at = time.perf_counter()
        if self.record_audio and self._recorded_samples < self._max_record_s * sample_rate:
            self.recorded.append(frame.copy())
            self._recorded_samples += frame.size
        if self._on_audio is not None:
            self._on_audio(frame, sample_rate)

    def clear_audio(self) -> None:
        self.clears += 1
        if self._on_clear is not None:
            self._on_clear()

    async def send_text(self, text: str) -> None:
        self.texts_out.append(text)
        if self._on_text is not None:
            self._on_text(text)

    async def publish_transcript(self, text: str, *, speaker: str, final: bool) -> None:
        self.transcripts.append((speaker, text, final))

    async def aclose(self) -> None:
        if self.participant is not None and not self.closed and self.session is not None:
            self.session.participant_left(self.participant.identity, "session_ended")
        self.closed = True

    # -- input helpers ----------------------------------------------------------------------
    def push_audio(self, data: Any, sample_rate: int, channels: int = 1) -> None:
        if self.session is not None:  # audio that arrives before connect has nowhere to go
            self.session.push_audio(data, sample_rate, channels)

    def push_text(self, text: str) -> Any:
        return self.session.push_text(text, source="local")

    def recorded_audio(self) -> np.ndarray:
        return np.concatenate(self.recorded) if self.recorded else np.zeros(0, dtype=np.int16)

    async def play(self, samples: np.ndarray, sample_rate: int, channels: int = 1, *, realtime: bool = True,
                   frame_ms: int = 20, tail_silence_ms: int = 0, ticker: Ticker | None = None) -> None:
        """Feed interleaved int16 audio as `frame_ms` frames; at real-time pace on the shared
        clock, or as fast as possible (yielding to the loop between frames)."""
        step = sample_rate * frame_ms // 1000 * channels
        if tail_silence_ms:
            pad = np.zeros(sample_rate * tail_silence_ms // 1000 * channels, dtype=np.int16)
            samples = np.concatenate([samples, pad])
        n_frames = samples.size // step
        if not realtime:
            for i in range(n_frames):
                self.session.push_audio(samples[i * step:(i + 1) * step], sample_rate, channels)
                if i % 5 == 4:
                    await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        clock = ticker or Ticker.shared(frame_ms / 1000)
        pos = 0
        sub = 0

        def tick(scheduled: float) -> None:
            nonlocal pos
            if pos >= n_frames or self.session is None or self.session.closed:
                clock.remove(sub)
                if not done.done():
                    done.set_result(None)
                return
            self.session.push_audio(samples[pos * step:(pos + 1) * step], sample_rate, channels)
            pos += 1
            if self._on_frame_lag is not None:
                self._on_frame_lag(loop.time() - scheduled)

        sub = clock.add(tick)
        try:
            await done
        finally:
            clock.remove(sub)
