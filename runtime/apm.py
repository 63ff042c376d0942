"""Optional echo cancellation / noise suppression with livekit.rtc.AudioProcessingModule.

The APM works on 10 ms frames, so longer frames are processed in 10 ms slices, in place.
"""
from __future__ import annotations

from typing import Any

import numpy as np


class AudioProcessor:
    def __init__(self, *, echo_cancellation: bool = False, noise_suppression: bool = False,
                 high_pass_filter: bool = False, auto_gain_control: bool = False) -> None:
        # imported here: livekit.rtc loads its native library (~200 ms), and only agents with
        # echo cancellation or noise suppression use the APM
        from livekit import rtc

        self._rtc: Any = rtc
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=echo_cancellation, noise_suppression=noise_suppression,
            high_pass_filter=high_pass_filter, auto_gain_control=auto_gain_control)

    def _slices(self, samples: np.ndarray, rate: int) -> Any:
        n = rate // 100
        for i in range(0, samples.size - n + 1, n):
            yield i, n

    def process_capture(self, samples: np.ndarray, rate: int) -> None:
        """Near-end (microphone) audio; modified in place."""
        for i, n in self._slices(samples, rate):
            frame = self._rtc.AudioFrame(samples[i:i + n].tobytes(), rate, 1, n)
            self._apm.process_stream(frame)
            samples[i:i + n] = np.frombuffer(frame.data, dtype=np.int16)

    def process_render(self, samples: np.ndarray, rate: int) -> None:
        """Far-end (agent) audio, so the echo canceller knows what to remove."""
        for i, n in self._slices(samples, rate):
            self._apm.process_reverse_stream(self._rtc.AudioFrame(samples[i:i + n].tobytes(), rate, 1, n))
