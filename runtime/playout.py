"""Paced audio out: TTS audio is queued here and leaves in real time, one small frame per
tick of the shared clock, so an interruption stops it within one frame."""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .clock import Ticker
from .speech import SpeechHandle


@dataclass(slots=True)
class PlayedSegment:
    text: str
    samples_total: int = 0  # audio received for this segment so far
    samples_played: int = 0
    complete: bool = False  # all of its audio has been queued


@dataclass(slots=True)
class PlayoutJob:
    """The audio of one speech. Segments map text to the audio that carries it."""

    speech_id: str
    segments: list[PlayedSegment] = field(default_factory=list)
    chunks: deque[tuple[np.ndarray, PlayedSegment]] = field(default_factory=deque)
    head_offset: int = 0
    queued: int = 0  # samples queued and not yet played
    input_done: bool = False
    samples_played: int = 0
    first_frame_at: float | None = None
    drained: Any = None  # an asyncio.Future the owner may hang here

    def rewind(self, samples: int) -> None:
        """Audio written out but never heard (the transport dropped it from its buffer on a
        cut) does not count as played: the last segments give it back, newest first."""
        samples = min(max(0, samples), self.samples_played)
        self.samples_played -= samples
        for seg in reversed(self.segments):
            if samples <= 0:
                break
            back = min(samples, seg.samples_played)
            seg.samples_played -= back
            samples -= back

    def played_text(self) -> str:
        parts: list[str] = []
        for seg in self.segments:
            if seg.samples_played <= 0:
                break
            if seg.complete and seg.samples_played >= seg.samples_total:
                parts.append(seg.text)
                continue
            frac = seg.samples_played / max(1, seg.samples_total)
            cut = int(len(seg.text) * frac)
            partial = seg.text[:cut]
            if cut < len(seg.text) and " " in partial:  # whole words only
                partial = partial[: partial.rfind(" ")]
            parts.append(partial)
            break
        return " ".join(p.strip() for p in parts if p.strip())


class Playout:
    """Per-session output pacing. `sink(frame)` receives a reused int16 buffer of one frame."""

    def __init__(self, *, sample_rate: int, frame_ms: int, sink: Callable[[np.ndarray], None],
                 ticker: Ticker, on_frame: Callable[[PlayoutJob, np.ndarray, float], None] | None = None,
                 on_drained: Callable[[PlayoutJob], None] | None = None,
                 on_cut: Callable[[], float | None] | None = None, lead_frames: int = 1) -> None:
        self.rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self.frame_s = frame_ms / 1000
        self._sink = sink
        self._ticker = ticker
        self._on_frame = on_frame
        self._on_drained = on_drained
        # the transport drops what it has buffered of a cut job, and says how many seconds that was
        self._on_cut = on_cut
        self._lead = lead_frames
        self._buf = np.zeros(self.frame_samples, dtype=np.int16)
        self.job: PlayoutJob | None = None
        self._sub: int | None = None
        self._start_t = 0.0
        self._frames_sent = 0
        self.frames_out = 0
        self.held = False  # paused: queued audio stays queued until release()

    # -- feeding -----------------------------------------------------------------------
    def begin(self, speech_id: str) -> PlayoutJob:
        self.clear()
        self.job = PlayoutJob(speech_id)
        return self.job

    def begin_segment(self, text: str) -> PlayedSegment:
        assert self.job is not None
        seg = PlayedSegment(text)
        self.job.segments.append(seg)
        return seg

    def push(self, seg: PlayedSegment, pcm: np.ndarray) -> None:
        job = self.job
        if job is None or pcm.size == 0:
            return
        seg.samples_total += pcm.size
        job.queued += pcm.size
        job.chunks.append((pcm, seg))
        if self._sub is None and not self.held:
            self._start()

    def end_input(self) -> None:
        if self.job is not None:
            self.job.input_done = True
            if not self.job.chunks and self._sub is None and not self.held:
                self._finish()

    def hold(self) -> None:
        """Stop sending frames now, keeping what is queued (the session was paused)."""
        self.held = True
        self._stop()

    def release(self) -> None:
        """Send the held audio on from where it stopped, on the clock's grid."""
        if not self.held:
            return
        self.held = False
        job = self.job
        if job is None:
            return
        if job.chunks:
            self._start()
        elif job.input_done:
            self._finish()

    def clear(self) -> PlayoutJob | None:
        """Drop all queued audio at once; returns the job as far as it was played."""
        job = self.job
        self._stop()
        self.job = None
        return job

    def cut(self, job: PlayoutJob | None) -> bool:
        """Interrupt `job` if it is the one playing: its audio stops within this frame."""
        if job is None or self.job is not job:
            return False
        self.clear()
        if self._on_cut is not None:
            dropped_s = self._on_cut()
            if dropped_s:  # written ahead (output_lead_frames) but never heard
                job.rewind(int(dropped_s * self.rate))
        return True

    @property
    def queued_samples(self) -> int:
        return 0 if self.job is None else self.job.queued

    @property
    def active(self) -> bool:
        return self._sub is not None

    # -- pacing --------------------------------------------------------------------------
    def _start(self) -> None:
        now = asyncio.get_running_loop().time()
        self._frames_sent = 0
        self._sub = self._ticker.add(self._tick)
        # Pace on the shared clock's grid: frame k is due at the k-th tick from the last grid
        # point, and the first frame goes out at once rather than waiting for a tick.
        self._start_t = self._ticker.next_at - self._ticker.period
        self._tick(max(now, self._start_t))

    def _stop(self) -> None:
        if self._sub is not None:
            self._ticker.remove(self._sub)
            self._sub = None

    def _tick(self, now: float) -> None:
        job = self.job
        if job is None:
            self._stop()
            return
        due = int((now - self._start_t) / self.frame_s + 1e-6) + self._lead  # float grid: no off-by-one
        while self._frames_sent < due:
            if job.queued == 0 and job.input_done:
                self._finish()
                return
            if job.queued < self.frame_samples and not job.input_done:
                return  # underrun: wait for more TTS audio
            self._fill(job, now)
            if self.job is not job:  # a callback cleared us
                return

    def _fill(self, job: PlayoutJob, now: float) -> None:
        fs = self.frame_samples
        buf = self._buf
        n = 0
        while n < fs and job.chunks:
            chunk, seg = job.chunks[0]
            take = min(fs - n, chunk.size - job.head_offset)
            buf[n:n + take] = chunk[job.head_offset:job.head_offset + take]
            seg.samples_played += take
            n += take
            job.head_offset += take
            if job.head_offset >= chunk.size:
                job.chunks.popleft()
                job.head_offset = 0
        job.queued -= n
        if n < fs:
            buf[n:] = 0  # the tail of the last frame
        self._frames_sent += 1
        self.frames_out += 1
        job.samples_played += n
        if job.first_frame_at is None:
            job.first_frame_at = now
        self._sink(buf)
        if self._on_frame is not None:
            self._on_frame(job, buf, now)

    def _finish(self) -> None:
        job = self.job
        self._stop()
        if job is not None and self._on_drained is not None:
            self._on_drained(job)


def cut_on_cancel(playout: Playout, job: PlayoutJob, speech: SpeechHandle) -> None:
    """The playout's subscription to a speech: cancelled, its job stops at once and the
    speech learns how much of it was heard."""
    def on_cancel(_reason: str) -> None:
        if playout.cut(job):
            speech.played_text = job.played_text()
            speech.played_ms = job.samples_played / playout.rate * 1000

    speech.on_cancel(on_cancel)
