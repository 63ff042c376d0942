"""Reading recorded WAVs back: levels and the dominant frequency of a span."""
from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np


def read_mono(path: Path | str) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64), wav.getframerate()


def dbfs(samples: np.ndarray) -> float:
    rms = math.sqrt(float(np.mean(samples ** 2))) / 32768.0 if samples.size else 0.0
    return 20 * math.log10(rms) if rms > 0 else -120.0


def band_share(samples: np.ndarray, rate: int, freq: float, width: float = 15.0) -> float:
    """The share of the span's energy within `width` Hz of `freq`."""
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / rate)
    total = float(spectrum.sum()) or 1.0
    return float(spectrum[(freqs > freq - width) & (freqs < freq + width)].sum()) / total


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
