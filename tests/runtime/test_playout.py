"""Paced playout, driven by a hand-cranked clock."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.playout import Playout

pytestmark = pytest.mark.asyncio


class HandClock:
    period = 0.02

    def __init__(self) -> None:
        self.subs: dict[int, object] = {}
        import asyncio

        self.next_at = asyncio.get_running_loop().time() + self.period

    def add(self, cb) -> int:
        self.subs[1] = cb
        return 1

    def remove(self, sub_id: int) -> None:
        self.subs.pop(sub_id, None)

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            for cb in list(self.subs.values()):
                cb(self.next_at)
            self.next_at += self.period


def _playout(clock: HandClock, sent: list[np.ndarray], drained: list[str]) -> Playout:
    return Playout(sample_rate=24000, frame_ms=20, sink=lambda f: sent.append(f.copy()), ticker=clock,
                   on_drained=lambda job: drained.append(job.speech_id))


async def test_first_frame_leaves_at_once_then_one_per_tick():
    clock, sent, drained = HandClock(), [], []
    p = _playout(clock, sent, drained)
    p.begin("s1")
    seg = p.begin_segment("Hello there.")
    p.push(seg, np.ones(480 * 5, dtype=np.int16))
    assert len(sent) == 1  # no waiting for the next tick
    clock.tick()
    assert len(sent) == 2
    clock.tick(2)
    assert len(sent) == 4
    p.end_input()
    clock.tick(3)
    assert len(sent) == 5 and drained == ["s1"]
    assert not p.active


async def test_partial_last_frame_is_padded_and_underrun_waits_for_more_audio():
    clock, sent, drained = HandClock(), [], []
    p = _playout(clock, sent, drained)
    p.begin("s1")
    seg = p.begin_segment("abc")
    p.push(seg, np.full(480 + 100, 7, dtype=np.int16))
    clock.tick(3)
    assert len(sent) == 1  # 100 samples left: not a whole frame while TTS is still streaming
    p.end_input()
    clock.tick()
    assert len(sent) == 2 and sent[1][:100].tolist() == [7] * 100 and not sent[1][100:].any()
    assert drained == ["s1"]


async def test_clear_stops_at_once_and_reports_played_text_in_whole_words():
    clock, sent, drained = HandClock(), [], []
    p = _playout(clock, sent, drained)
    job = p.begin("s1")
    first = p.begin_segment("One two three.")
    p.push(first, np.ones(480 * 2, dtype=np.int16))
    first.complete = True
    second = p.begin_segment("Four five six seven eight.")
    p.push(second, np.ones(480 * 10, dtype=np.int16))
    clock.tick(5)  # 6 frames: all of the first segment, 4 of 10 frames of the second
    cleared = p.clear()
    assert cleared is job and p.job is None and not p.active
    clock.tick(5)
    assert len(sent) == 6
    assert job.samples_played == 6 * 480
    assert job.played_text() == "One two three. Four five"
    assert drained == []


async def test_a_cut_written_ahead_counts_only_what_the_transport_did_not_drop():
    # a transport with a native queue (LiveKit) is written output_lead_frames ahead; on a cut
    # it drops what it still held, and the history must keep only what was heard
    clock, sent, dropped = HandClock(), [], []
    p = Playout(sample_rate=24000, frame_ms=20, sink=lambda f: sent.append(f.copy()), ticker=clock,
                on_cut=lambda: dropped.append(0.1) or 0.1, lead_frames=5)
    job = p.begin("s1")
    first = p.begin_segment("One two three.")
    p.push(first, np.ones(480 * 2, dtype=np.int16))
    first.complete = True
    second = p.begin_segment("Four five six seven eight.")
    p.push(second, np.ones(480 * 10, dtype=np.int16))
    clock.tick(3)  # 8 frames written in all (5 of them ahead of the clock)
    assert len(sent) == 8
    assert p.cut(job) and dropped == [0.1]
    # the transport still held the last 5 (0.1 s) when cut: heard, the first segment and
    # 1 of the second's 10 frames (without the rewind: 6 of them, "Four five")
    assert job.samples_played == 3 * 480
    assert (first.samples_played, second.samples_played) == (2 * 480, 480)
    assert job.played_text().startswith("One two three.") and "five" not in job.played_text()
