"""One shared pacing clock per event loop.

Hundreds of sessions each sleeping 50 times a second cost a timer, a wake-up and a task
switch per frame per session; instead one ticker wakes every `period` and calls every
subscriber in turn. Ticks are scheduled on an absolute grid so the clock does not drift;
after a long stall it skips ahead rather than bursting.
"""
from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable

log = logging.getLogger(__name__)

TickCallback = Callable[[float], None]  # receives the scheduled tick time (loop.time())


class Ticker:
    _by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Ticker]" = weakref.WeakKeyDictionary()

    def __init__(self, period_s: float = 0.02) -> None:
        self.period = period_s
        self._subs: dict[int, TickCallback] = {}
        self._next_id = 0
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.next_at = 0.0  # scheduled loop time of the next tick

    @classmethod
    def shared(cls, period_s: float = 0.02) -> "Ticker":
        loop = asyncio.get_running_loop()
        t = cls._by_loop.get(loop)
        if t is None or t.period != period_s:
            t = cls._by_loop[loop] = cls(period_s)
        return t

    def add(self, cb: TickCallback) -> int:
        self._next_id += 1
        self._subs[self._next_id] = cb
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self.next_at = loop.time() + self.period
            self._task = loop.create_task(self._run(), name="runtime-ticker")
        return self._next_id

    def remove(self, sub_id: int) -> None:
        self._subs.pop(sub_id, None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._subs:
            nxt = self.next_at
            delay = nxt - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            scheduled = nxt
            for cb in list(self._subs.values()):
                try:
                    cb(scheduled)
                except Exception:  # a subscriber's bug must not stop everyone's clock
                    log.exception("ticker subscriber failed")
            self.ticks += 1
            nxt += self.period
            now = loop.time()
            if now - nxt > 5 * self.period:
                nxt = now + self.period  # fell far behind: skip ahead instead of bursting
            self.next_at = nxt
        self._task = None  # idle: hold no reference to the loop (the per-loop registry is weak)
