"""Mixing two live audio streams onto one timeline, a little at a time.

Each direction (user, agent) is placed where its frames arrived in wall-clock time, but
frames that follow each other closely are laid end to end (jitter does not cut gaps into
speech); a pause longer than `gap_s` becomes silence. Only the span no future frame can
still land in is handed out, so what is held stays about `gap_s` long, however long the
call is.
"""
from __future__ import annotations

import numpy as np

USER, AGENT = 0, 1


class TimelineMixer:
    def __init__(self, rate: int, *, gap_s: float = 0.2) -> None:
        self.rate = rate
        self.gap = int(gap_s * rate)
        self.t0: float | None = None
        self.written = 0  # samples already handed out
        self.end = 0  # one past the last sample placed
        self._cursors: list[int | None] = [None, None]
        self._buf = np.zeros(rate, dtype=np.int32)  # samples [written, written + len(_buf))
        self.max_buffered = 0

    @property
    def buffered(self) -> int:
        return self.end - self.written

    def _wall(self, t: float) -> int:
        if self.t0 is None:
            self.t0 = t
        return int((t - self.t0) * self.rate)

    def place(self, direction: int, t: float, samples: np.ndarray) -> None:
        """Add `samples` (int16, at `rate`) of `direction` that arrived at monotonic time `t`."""
        n = samples.size
        if n == 0:
            return
        wall = self._wall(t)
        cursor = self._cursors[direction]
        if cursor is None or wall > cursor + self.gap:
            cursor = wall  # after a pause: where it happened
        cursor = max(cursor, self.written)
        start = cursor - self.written
        if start + n > self._buf.size:
            grown = np.zeros(max(start + n, 2 * self._buf.size), dtype=np.int32)
            grown[: self._buf.size] = self._buf
            self._buf = grown
        self._buf[start:start + n] += samples
        self._cursors[direction] = cursor + n
        self.end = max(self.end, cursor + n)
        self.max_buffered = max(self.max_buffered, self.end - self.written)

    def safe_end(self, now: float) -> int:
        """Up to where nothing more can be placed (frames still to come land at or after it)."""
        if self.t0 is None:
            return self.written
        wall = self._wall(now)
        bounds = []
        for cursor in self._cursors:
            if cursor is None or cursor < wall - self.gap:
                bounds.append(wall)  # its next frame starts a new stretch at its arrival
            else:
                bounds.append(min(cursor, wall))
        return max(self.written, min(bounds))

    def take(self, upto: int | None = None) -> np.ndarray:
        """The mixed samples [written, upto) as int16 (everything placed when `upto` is None)."""
        upto = self.end if upto is None else upto
        count = max(0, upto - self.written)
        if count == 0:
            return np.zeros(0, dtype=np.int16)
        if count > self._buf.size:  # silence past what was placed
            grown = np.zeros(count, dtype=np.int32)
            grown[: self._buf.size] = self._buf
            self._buf = grown
        out = np.clip(self._buf[:count], -32768, 32767).astype(np.int16)
        rest = self._buf.size - count
        self._buf[:rest] = self._buf[count:]
        self._buf[rest:] = 0
        self.written = upto
        self.end = max(self.end, self.written)
        return out
