"""Turn detection and endpointing.

A user turn starts with the first VAD speech start and ends when (a) VAD reports
silence, (b) every utterance of the turn has a final transcript, and (c) the
endpointing delay has passed since the user stopped speaking: the minimum delay when
the transcript reads as finished, the maximum when it trails off ("…and", "um").
Speech that resumes before the commit continues the same turn.

The Endpointer reaches its session only through `EndpointHooks` (as livekit-agents'
`AudioRecognition` reaches its owner through `RecognitionHooks`).
"""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from runtime.provider_configs import TurnConfig

from . import events as ev
from .providers.base import STT
from .speech import TurnTimer, new_id


@runtime_checkable
class EndpointHooks(Protocol):
    def emit(self, event: ev.Event) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]: ...

    def user_speaking(self) -> bool:
        """VAD hears the user now: a turn is never committed while they speak."""
        ...

    def commit_user_turn(self, text: str, timer: TurnTimer, *, source: str) -> Any: ...

    def report_error(self, source: str, exc: BaseException) -> None: ...


_TRAILING = re.compile(
    r"\b(and|but|or|so|because|um+|uh+|er|like|the|a|an|to|of|with|for|if|then|my|your|is|are)[\s,]*$",
    re.IGNORECASE)


def sounds_unfinished(text: str) -> bool:
    t = text.strip()
    if not t:
        return False
    if t[-1] in ".!?…":
        return False
    return t.endswith((",", "-", "—")) or bool(_TRAILING.search(t))


@dataclass
class _Turn:
    id: str
    texts: list[str] = field(default_factory=list)
    stt_tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    last_voice: float | None = None
    stt_ms: float = 0.0
    stt_audio_ms: float = 0.0


class Endpointer:
    def __init__(self, hooks: EndpointHooks, stt: STT | None, opts: TurnConfig) -> None:
        self.hooks = hooks
        self.stt = stt
        self.opts = opts
        self._turn: _Turn | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> bool:
        return self._turn is not None

    def on_speech_start(self) -> None:
        self._cancel_timer()
        if self._turn is None:
            self._turn = _Turn(new_id("turn"))
            self.hooks.emit(ev.TurnStarted(turn_id=self._turn.id, source="audio"))

    def on_speech_end(self, pcm: np.ndarray, rate: int, *, silence_s: float) -> None:
        turn = self._turn
        if turn is None:  # speech ended without a start we saw (e.g. resumed from pause)
            self.on_speech_start()
            turn = self._turn
            assert turn is not None
        turn.last_voice = time.perf_counter() - silence_s
        turn.stt_audio_ms += pcm.size / rate * 1000
        task = self.hooks.spawn(self._transcribe(turn, pcm, rate), "stt")
        turn.stt_tasks.append(task)
        self._schedule(self.opts.min_endpointing_delay_ms / 1000)

    async def _transcribe(self, turn: _Turn, pcm: np.ndarray, rate: int) -> None:
        stt = self.stt
        assert stt is not None
        t0 = time.perf_counter()
        try:
            res = await stt.transcribe(pcm, rate)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a provider failure or bug must not kill the session
            self.hooks.report_error("stt", exc)
            return
        finally:
            turn.stt_ms = (time.perf_counter() - t0) * 1000
            if self._turn is turn:
                asyncio.get_running_loop().call_soon(self.check)
        self.hooks.emit(ev.SttResult(text=res.text, is_final=True, language=res.language,
                                       audio_duration_ms=round(pcm.size / rate * 1000, 1),
                                       duration_ms=round(turn.stt_ms, 3)))
        if res.text:
            turn.texts.append(res.text)

    def _schedule(self, delay_s: float) -> None:
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(max(0.0, delay_s), self.check)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def check(self) -> None:
        """Commit the turn if every condition holds; otherwise wait for the next trigger."""
        turn = self._turn
        if turn is None or self.hooks.user_speaking() or turn.last_voice is None:
            return
        if any(not t.done() for t in turn.stt_tasks):
            return  # re-checked when the transcript arrives
        text = " ".join(turn.texts).strip()
        wait_ms = self.opts.max_endpointing_delay_ms if sounds_unfinished(text) else self.opts.min_endpointing_delay_ms
        due = turn.last_voice + wait_ms / 1000
        now = time.perf_counter()
        if now < due:
            self._schedule(due - now)
            return
        self._cancel_timer()
        self._turn = None
        timer = TurnTimer(turn_id=turn.id, last_voice=turn.last_voice, committed=now,
                          stt_ms=round(turn.stt_ms, 3), stt_audio_ms=round(turn.stt_audio_ms, 1))
        self.hooks.commit_user_turn(text, timer, source="audio")

    def cancel(self) -> None:
        self._cancel_timer()
        self._turn = None
