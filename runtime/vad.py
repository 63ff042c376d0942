"""Voice activity detection with webrtcvad and hysteresis, plus the utterance buffer.

Settings come from the agent's VAD config (`runtime.provider_configs.WebRTCVADConfig`) as is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import _webrtcvad
import numpy as np
import webrtcvad

from runtime.provider_configs import WebRTCVADConfig

SAMPLE_RATE = 16000  # what the pipeline hears: AudioInput turns every input into this


def webrtc_mode(sensitivity: float) -> int:
    """0.0 (least eager to call audio speech) … 1.0 (most) → webrtcvad's mode 3 … 0
    (mode 0 is the least aggressive filter: it calls most things speech)."""
    return max(0, min(3, round((1.0 - sensitivity) * 3)))


@dataclass(frozen=True, slots=True)
class VadTransition:
    kind: Literal["start", "end"]
    speech_ms: float  # voiced duration of the utterance so far (end: total)
    silence_ms: float


class VAD:
    """Speech starts after `min_speech_ms` of consecutive voiced frames and ends after
    `min_silence_ms` of consecutive unvoiced ones; in between the state holds."""

    def __init__(self, opts: WebRTCVADConfig, *, sample_rate: int = SAMPLE_RATE) -> None:
        if opts.frame_ms not in (10, 20, 30):
            raise ValueError("webrtcvad frames must be 10, 20 or 30 ms")
        if sample_rate not in (8000, 16000, 32000, 48000):
            raise ValueError("webrtcvad needs 8/16/32/48 kHz audio")
        self.opts = opts
        self.sample_rate = sample_rate
        self._frame_ms = opts.frame_ms
        self._vad = webrtcvad.Vad(webrtc_mode(opts.sensitivity))
        self._handle = self._vad._vad  # the C detector: process() calls it without the wrapper
        self.frame_samples = sample_rate * opts.frame_ms // 1000
        self._start_frames = max(1, -(-opts.min_speech_ms // opts.frame_ms))
        self._end_frames = max(1, -(-opts.min_silence_ms // opts.frame_ms))
        self.speaking = False
        self._voiced_run = 0
        self._silent_run = 0
        self._speech_frames = 0

    def process(self, frame: np.ndarray) -> VadTransition | None:
        # webrtcvad's C function, not Vad.is_speech: the wrapper's length arithmetic cost as
        # much as the detection, per frame of every call. The length is the frame's own sample
        # count, so the C code never reads past the buffer; a frame that is not int16 is refused
        # (C reads int16 samples), and a size webrtcvad cannot take raises webrtcvad.Error as before.
        if frame.dtype != np.int16:
            raise ValueError(f"VAD frames are int16, not {frame.dtype}")
        voiced = _webrtcvad.process(self._handle, self.sample_rate, frame, frame.size)
        fm = self._frame_ms
        if voiced:
            self._voiced_run += 1
            self._silent_run = 0
        else:
            self._silent_run += 1
            self._voiced_run = 0
        if not self.speaking:
            if self._voiced_run >= self._start_frames:
                self.speaking = True
                self._speech_frames = self._voiced_run
                return VadTransition("start", self._speech_frames * fm, 0.0)
            return None
        if voiced:
            self._speech_frames += 1
        elif self._silent_run >= self._end_frames:
            self.speaking = False
            return VadTransition("end", self._speech_frames * fm, self._silent_run * fm)
        return None

    @property
    def speech_ms(self) -> float:
        return self._speech_frames * self._frame_ms if self.speaking else 0.0

    def reset(self) -> None:
        self.speaking = False
        self._voiced_run = self._silent_run = self._speech_frames = 0


class UtteranceBuffer:
    """Keeps `padding_ms` of pre-roll while idle and the whole utterance while speaking."""

    MAX_S = 60

    def __init__(self, *, rate: int, padding_ms: int, frame_samples: int) -> None:
        self.rate = rate
        self._pre = max(frame_samples, rate * padding_ms // 1000)
        # the pre-roll is a circular buffer: one copy per idle frame, not a shift and a copy
        self._ring = np.zeros(self._pre, dtype=np.int16)
        self._ring_n = 0  # samples held (at most _pre)
        self._ring_w = 0  # where the next sample goes; once full, also the oldest sample
        self._buf = np.zeros(rate * 4, dtype=np.int16)
        self._n = 0
        self.active = False

    def push(self, frame: np.ndarray) -> None:
        if self.active:
            need = self._n + frame.size
            if need > self._buf.size:
                if self._buf.size >= self.rate * self.MAX_S:
                    return  # cap: keep the first MAX_S seconds
                grown = np.zeros(min(self.rate * self.MAX_S, self._buf.size * 2), dtype=np.int16)
                grown[: self._n] = self._buf[: self._n]
                self._buf = grown
                need = min(need, grown.size)
            self._buf[self._n:need] = frame[: need - self._n]
            self._n = need
            return
        n = frame.size
        pre = self._pre
        if n >= pre:
            self._ring[:] = frame[-pre:]
            self._ring_n, self._ring_w = pre, 0
            return
        w = self._ring_w
        first = min(n, pre - w)
        self._ring[w:w + first] = frame[:first]
        if first < n:  # wraps round
            self._ring[:n - first] = frame[first:]
        self._ring_w = (w + n) % pre
        self._ring_n = min(pre, self._ring_n + n)

    def begin(self) -> None:
        """Speech started: the pre-roll (oldest first) becomes the head of the utterance."""
        self.active = True
        held, w = self._ring_n, self._ring_w
        if held < self._pre:  # never wrapped: the samples are ring[:held]
            self._buf[:held] = self._ring[:held]
        else:
            tail = self._pre - w
            self._buf[:tail] = self._ring[w:]
            self._buf[tail:held] = self._ring[:w]
        self._n = held
        self._ring_n = self._ring_w = 0

    def take(self) -> np.ndarray:
        """Speech ended: the utterance (a copy) and back to pre-roll mode."""
        out = self._buf[: self._n].copy()
        self._n = 0
        self.active = False
        if self._buf.size > self.rate * 8:  # don't keep a long utterance's buffer around
            self._buf = np.zeros(self.rate * 4, dtype=np.int16)
        return out

    @property
    def size(self) -> int:
        return self._n
