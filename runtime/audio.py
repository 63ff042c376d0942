"""Audio in: frames of any rate and channel count → 16 kHz mono int16 frames of fixed size.

The fast path (already 16 kHz mono, whole frames) makes no copies: frames are numpy views.
Other rates go through `livekit.rtc.AudioResampler` (sox, runs offline).
"""
from __future__ import annotations

import io
import math
import wave
from typing import Any

import numpy as np

VAD_RATES = (8000, 16000, 32000, 48000)
MIN_RATE, MAX_RATE = 8000, 192_000


class MalformedAudio(ValueError):
    """A frame we cannot interpret (odd byte count, unknown rate, bad channel count)."""


def as_int16(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        if data.dtype != np.int16:
            raise MalformedAudio(f"expected int16 samples, got {data.dtype}")
        return data.reshape(-1)
    buf = memoryview(data).cast("B")
    if len(buf) % 2:
        raise MalformedAudio(f"odd byte count {len(buf)}: not whole 16-bit samples")
    return np.frombuffer(buf, dtype=np.int16)


def dbfs(sum_sq: float, samples: int) -> float:
    """The level of `samples` int16 samples whose squares sum to `sum_sq`, in dBFS."""
    rms = math.sqrt(sum_sq / samples) / 32768.0 if samples else 0.0
    return 20.0 * math.log10(rms) if rms > 1e-6 else -120.0


def level_dbfs(samples: np.ndarray) -> float:
    meter = LevelMeter()
    meter.add(samples)
    return meter.level()


class LevelMeter:
    """Frames, samples and level of one audio stream over an interval: the one place audio
    is metered (the session's in/out meters, the event they become, the sink stores it).

    Per frame it costs one copy into a float64 block; the block's sum of squares is taken
    (one dot product) when it is full or the level is read. A dot per frame was the largest
    self cost of a worker hosting hundreds of calls (bench/capacity.py), and float64 keeps
    the sum exact however long the block (int16 squares overflow int16)."""

    __slots__ = ("frames", "samples", "_sum_sq", "_block", "_used")

    BLOCK_SAMPLES = 8192  # about half a second at 16 kHz: a few dozen frames per dot product

    def __init__(self) -> None:
        self.frames = 0
        self.samples = 0
        self._sum_sq = 0.0
        self._block = np.empty(self.BLOCK_SAMPLES, dtype=np.float64)
        self._used = 0  # samples of the block not yet in _sum_sq

    def add(self, frame: np.ndarray) -> None:
        """One mono int16 frame."""
        n = frame.size
        used = self._used
        if used + n > self.BLOCK_SAMPLES:
            self._fold()
            used = 0
            if n > self.BLOCK_SAMPLES:  # a frame longer than the block: on its own
                x = frame.astype(np.float64)
                self._sum_sq += float(np.dot(x, x))
                self.samples += n
                self.frames += 1
                return
        np.copyto(self._block[used:used + n], frame)
        self._used = used + n
        self.samples += n
        self.frames += 1

    def _fold(self) -> None:
        if self._used:
            x = self._block[:self._used]
            self._sum_sq += float(np.dot(x, x))
            self._used = 0

    def level(self) -> float:
        self._fold()
        return dbfs(self._sum_sq, self.samples)

    def reset(self) -> None:
        self.frames = self.samples = self._used = 0
        self._sum_sq = 0.0


class AudioInput:
    """Converts incoming frames to `frame_samples`-long 16 kHz mono frames.

    `push` returns a list of int16 views; they stay valid until the next `push`.
    """

    def __init__(self, *, rate: int = 16000, frame_ms: int = 20) -> None:
        self.rate = rate
        self.frame_samples = rate * frame_ms // 1000
        self._pending = np.zeros(self.frame_samples * 64, dtype=np.int16)
        self._n = 0  # samples pending in _pending
        self._resamplers: dict[tuple[int, int], Any] = {}
        self.last_rate = rate
        self.last_channels = 1

    def push(self, data: Any, sample_rate: int, channels: int = 1) -> list[np.ndarray]:
        if not isinstance(sample_rate, int) or not MIN_RATE <= sample_rate <= MAX_RATE:
            raise MalformedAudio(f"unsupported sample rate {sample_rate!r}")
        if not isinstance(channels, int) or not 1 <= channels <= 8:
            raise MalformedAudio(f"unsupported channel count {channels!r}")
        samples = as_int16(data)
        if samples.size % channels:
            raise MalformedAudio(f"{samples.size} samples do not divide into {channels} channels")
        self.last_rate, self.last_channels = sample_rate, channels
        if channels == 2:
            samples = ((samples[0::2].astype(np.int32) + samples[1::2]) >> 1).astype(np.int16)
        elif channels > 2:
            samples = (samples.reshape(-1, channels).sum(axis=1, dtype=np.int32) // channels).astype(np.int16)
        if sample_rate != self.rate:
            samples = self._resample(samples, sample_rate)
        fs = self.frame_samples
        if self._n == 0 and samples.size == fs:
            return [samples]  # fast path: a whole frame, no copy
        return self._chunk(samples)

    def _chunk(self, samples: np.ndarray) -> list[np.ndarray]:
        fs = self.frame_samples
        need = self._n + samples.size
        if need > self._pending.size:
            grown = np.zeros(max(need, self._pending.size * 2), dtype=np.int16)
            grown[: self._n] = self._pending[: self._n]
            self._pending = grown
        self._pending[self._n:need] = samples
        self._n = need
        whole = (self._n // fs) * fs
        if whole == 0:
            return []
        out = self._pending[:whole].copy()
        rest = self._n - whole
        if rest:
            self._pending[:rest] = self._pending[whole:self._n]
        self._n = rest
        return [out[i:i + fs] for i in range(0, whole, fs)]

    def _resample(self, samples: np.ndarray, rate: int) -> np.ndarray:
        # imported here: livekit.rtc loads its native library (~200 ms), and only input at another rate needs it
        from livekit import rtc

        key = (rate, self.rate)
        rs = self._resamplers.get(key)
        if rs is None:
            rs = self._resamplers[key] = rtc.AudioResampler(rate, self.rate, num_channels=1)
        frames = rs.push(bytearray(samples.tobytes()))
        if not frames:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])

    def reset(self) -> None:
        self._n = 0


def resample_to(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """One-shot resampling for whole buffers (e.g. TTS audio at a rate the transport lacks)."""
    if rate_in == rate_out or samples.size == 0:
        return samples
    # imported here: livekit.rtc loads its native library (~200 ms), and only audio at another rate needs it
    from livekit import rtc

    rs = rtc.AudioResampler(rate_in, rate_out, num_channels=1)
    out = [np.frombuffer(f.data, dtype=np.int16) for f in rs.push(bytearray(samples.tobytes()))]
    out += [np.frombuffer(f.data, dtype=np.int16) for f in rs.flush()]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)


class StreamResampler:
    """Resamples a stream of int16 mono chunks, keeping the filter state across chunks
    (for TTS audio that arrives in pieces at a rate the session does not play)."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        # imported here: livekit.rtc loads its native library (~200 ms), and only input at another rate needs it
        from livekit import rtc

        self.rate_in, self.rate_out = rate_in, rate_out
        self._rs = rtc.AudioResampler(rate_in, rate_out, num_channels=1) if rate_in != rate_out else None

    def push(self, samples: np.ndarray) -> np.ndarray:
        if self._rs is None or samples.size == 0:
            return samples
        return _joined(self._rs.push(bytearray(samples.tobytes())))

    def flush(self) -> np.ndarray:
        return np.zeros(0, dtype=np.int16) if self._rs is None else _joined(self._rs.flush())


def _joined(frames: list[Any]) -> np.ndarray:
    if not frames:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])


def wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2", copy=False).tobytes())
    return buf.getvalue()


def read_wav(path: str) -> tuple[np.ndarray, int, int]:
    """(interleaved int16 samples, sample rate, channels) of a 16-bit PCM WAV file."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise MalformedAudio(f"{path}: only 16-bit PCM WAV is supported")
        return (np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16),
                w.getframerate(), w.getnchannels())
