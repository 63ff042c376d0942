"""Call recording: the Django side of the runtime's `AudioTap`.

On the audio loop, `user_audio`/`agent_audio` only copy the frame's bytes into a bounded
queue (a full queue drops the frame and counts it; the call never waits). One writer thread
per process drains every open recorder about ten times a second: it resamples to
RECORDING_RATE, mixes both directions onto one timeline (`TimelineMixer`) and appends the
settled part to a WAV spool file on disk, so memory holds a fraction of a second however
long the call is. When the call ends, `close()` writes the rest, hands the file to the
`recordings` storage (settings.STORAGES; local MEDIA_ROOT by default, S3 through
django-storages) and creates the `Recording` row.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
import wave
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files import File
from django.db import connection
from django.utils import timezone

from sessions.audio_mix import AGENT, USER, TimelineMixer
from sessions.models import Recording, recordings_storage
from runtime.audio import StreamResampler

log = logging.getLogger(__name__)
RECORDING_RATE = 16_000
MAX_QUEUED_FRAMES = 1_500  # ~15-30 s of 10-20 ms frames of both directions if the writer stalls
PUMP_INTERVAL_S = 0.1
Queued = tuple[int, float, bytes, int]  # direction, arrival (monotonic), int16 bytes, sample rate


class CallRecorder:
    """Records one call. Thread-safe taps; `close()` blocks (call it off the event loop)."""

    def __init__(self, session_id: str, *, rate: int = RECORDING_RATE, spool_dir: str | Path | None = None,
                 clock: Callable[[], float] = time.monotonic, max_queued: int = MAX_QUEUED_FRAMES,
                 autostart: bool = True) -> None:
        self.session_id = session_id
        self.rate = rate
        self.dropped = 0
        self.samples_written = 0
        self.max_queued_seen = 0
        self._clock = clock
        self._max_queued = max_queued
        self._queue: deque[Queued] = deque()
        self._mixer = TimelineMixer(rate)
        self._mixer.t0 = clock()  # the file starts when the call does
        self._resamplers: dict[tuple[int, int], StreamResampler] = {}  # (direction, input rate)
        self._lock = threading.Lock()
        self._closed = False
        self._finished = False
        spool = Path(spool_dir or settings.RECORDINGS_SPOOL_DIR)
        spool.mkdir(parents=True, exist_ok=True)
        self.spool_path = spool / f"{session_id}-{uuid.uuid4().hex[:8]}.wav"
        self._wav = wave.open(str(self.spool_path), "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        if autostart:
            _writer.register(self)

    # -- AudioTap: on the session's event loop, per frame --
    def user_audio(self, frame: Any, sample_rate: int) -> None:
        self._put(USER, frame, sample_rate)

    def agent_audio(self, frame: Any, sample_rate: int) -> None:
        self._put(AGENT, frame, sample_rate)

    def _put(self, direction: int, frame: Any, sample_rate: int) -> None:
        if self._closed:
            return
        queued = len(self._queue)
        if queued >= self._max_queued:
            self.dropped += 1
            return
        self.max_queued_seen = max(self.max_queued_seen, queued + 1)
        self._queue.append((direction, self._clock(), np.asarray(frame, dtype=np.int16).tobytes(), sample_rate))

    # -- the writer thread --
    @property
    def buffered_bytes(self) -> int:
        """Audio held in memory now: queued frames plus the mixer's unsettled span."""
        return sum(len(item[2]) for item in list(self._queue)) + 2 * self._mixer.buffered

    @property
    def max_mixer_samples(self) -> int:
        return self._mixer.max_buffered

    def pump(self, *, final: bool = False) -> None:
        with self._lock:
            if self._finished:
                return
            while True:
                try:
                    direction, at, data, rate = self._queue.popleft()
                except IndexError:
                    break
                samples = self._resample(direction, np.frombuffer(data, dtype=np.int16), rate)
                self._mixer.place(direction, at, samples)
            now = self._clock()
            # at the end, keep the silence up to now too: the file lasts as long as the call
            upto = max(self._mixer.end, self._mixer.safe_end(now)) if final else self._mixer.safe_end(now)
            out = self._mixer.take(upto)
            if out.size:
                self._wav.writeframes(out.astype("<i2", copy=False).tobytes())
                self.samples_written += out.size

    def _resample(self, direction: int, samples: np.ndarray, rate: int) -> np.ndarray:
        # one stream per direction and rate: the filter keeps its state from frame to frame
        resampler = self._resamplers.get((direction, rate))
        if resampler is None:
            resampler = self._resamplers[(direction, rate)] = StreamResampler(rate, self.rate)
        return resampler.push(samples)

    # -- the end of the call --
    def finish(self) -> Path:
        """Stop taking frames, write what is left, close the spool file; its path."""
        self._closed = True
        _writer.unregister(self)
        self.pump(final=True)
        with self._lock:
            if not self._finished:
                self._finished = True
                self._wav.close()
        return self.spool_path

    def close(self) -> Recording | None:
        """finish(), then store the file and its row. None (and the spool kept) if storing fails."""
        path = self.finish()
        try:
            return self._store(path)
        except Exception:  # noqa: BLE001 - the spool file stays on disk for an operator to recover
            log.exception("recording of %s not stored; the file is kept at %s", self.session_id, path)
            return None
        finally:
            if not connection.in_atomic_block:  # on a to_thread worker thread: give the connection back
                connection.close()

    def _store(self, path: Path) -> Recording:
        storage = recordings_storage()
        name = f"recordings/{timezone.now():%Y/%m/%d}/{self.session_id}.wav"
        with path.open("rb") as handle:
            saved = storage.save(name, File(handle, name=name))
        size = path.stat().st_size
        path.unlink(missing_ok=True)
        recording, _ = Recording.objects.update_or_create(
            session_id=self.session_id,
            defaults={"file": saved, "content_type": "audio/wav", "sample_rate": self.rate,
                      "duration_ms": int(self.samples_written * 1000 / self.rate), "size_bytes": size,
                      "dropped_frames": self.dropped},
        )
        if self.dropped:
            log.warning("recording of %s dropped %d frames (writer too slow)", self.session_id, self.dropped)
        return recording


class _RecordingWriter:
    """The process's one recording thread; it exits when no recorder is open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recorders: list[CallRecorder] = []
        self._thread: threading.Thread | None = None

    def register(self, recorder: CallRecorder) -> None:
        with self._lock:
            self._recorders.append(recorder)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="recording-writer", daemon=True)
                self._thread.start()

    def unregister(self, recorder: CallRecorder) -> None:
        with self._lock:
            if recorder in self._recorders:
                self._recorders.remove(recorder)

    def _run(self) -> None:
        while True:
            time.sleep(PUMP_INTERVAL_S)
            with self._lock:
                recorders = list(self._recorders)
                if not recorders:
                    self._thread = None
                    return
            for recorder in recorders:
                try:
                    recorder.pump()
                except Exception:  # noqa: BLE001 - one recording's failure must not stop the others
                    log.exception("recording of %s failed", recorder.session_id)


_writer = _RecordingWriter()
