"""The pause gate: while an operator holds a session, the agent neither listens nor speaks.

`SessionCore.pause()` closes the gate and `resume()` opens it. What each side does with it:
- user input: audio frames are dropped (`push_audio` takes frames only while active), text
  is logged but never becomes a turn, a turn being endpointed is abandoned;
- agent output: no new speech starts (the speech loop waits on `wait_open`), the playout
  holds its queued audio where it is and plays on after resume, a text reply waits before
  it is sent.
Nothing is cancelled or lost on the output side: resume carries on where pause stopped.
"""
from __future__ import annotations

import asyncio


class PauseGate:
    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()

    @property
    def paused(self) -> bool:
        return not self._open.is_set()

    def close(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    async def wait_open(self) -> None:
        if not self._open.is_set():
            await self._open.wait()
