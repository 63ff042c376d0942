"""The timeline mixer: arrival times place each direction; jitter closes up, pauses stay silent."""
from __future__ import annotations

import numpy as np

from sessions.audio_mix import AGENT, USER, TimelineMixer

RATE = 1000  # 1 sample per ms keeps the arithmetic readable


def ones(n: int, value: int = 100) -> np.ndarray:
    return np.full(n, value, dtype=np.int16)


def test_frames_arriving_with_jitter_are_laid_end_to_end() -> None:
    mix = TimelineMixer(RATE, gap_s=0.2)
    mix.t0 = 0.0
    for i, t in enumerate([0.0, 0.025, 0.035, 0.066]):  # 20 ms frames, ±10 ms late or early
        mix.place(USER, t, ones(20))
    out = mix.take()
    assert out.size == 80 and (out == 100).all()


def test_a_pause_longer_than_the_gap_becomes_silence_where_it_happened() -> None:
    mix = TimelineMixer(RATE, gap_s=0.2)
    mix.t0 = 0.0
    mix.place(USER, 0.0, ones(100))
    mix.place(USER, 1.0, ones(100))
    out = mix.take()
    assert out.size == 1100
    assert (out[:100] == 100).all() and (out[100:1000] == 0).all() and (out[1000:] == 100).all()


def test_both_directions_add_and_clip() -> None:
    mix = TimelineMixer(RATE)
    mix.t0 = 0.0
    mix.place(USER, 0.0, ones(50, 30000))
    mix.place(AGENT, 0.0, ones(50, 10000))
    mix.place(AGENT, 0.05, ones(50, -500))
    out = mix.take()
    assert (out[:50] == 32767).all() and (out[50:100] == -500).all()


def test_only_the_settled_span_is_handed_out() -> None:
    mix = TimelineMixer(RATE, gap_s=0.2)
    mix.t0 = 0.0
    mix.place(USER, 0.0, ones(500))  # a burst: the user cursor runs ahead of the clock
    assert mix.safe_end(0.1) == 100  # the agent may still speak from now on
    assert mix.take(mix.safe_end(0.1)).size == 100
    mix.place(AGENT, 0.15, ones(20, 7))
    out = mix.take(mix.safe_end(0.6))
    assert out.size == 400 and (out[50:70] == 107).all()  # the agent frame landed at 150 ms
    assert mix.buffered == 0 and mix.max_buffered == 500
