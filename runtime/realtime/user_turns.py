"""The user's side of a realtime session: when a turn starts, ends and what was said.

With server VAD the model's `input_audio_buffer.speech_started/stopped/committed` events
drive the turn; with local turn detection our VAD does, and we commit the input buffer and
ask for the reply ourselves after the endpointing delay. Either way the turn ends when the
server's transcript of it arrives (`stt_result`, `turn_ended`, a user history item).

UserTurns reaches its session only through `UserTurnHooks`; the model link is attached
once the session is connected.
"""
from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from runtime.provider_configs import TurnConfig, WebRTCVADConfig

from .. import events as ev
from ..audio import AudioInput
from ..speech import TurnTimer, new_id
from ..vad import SAMPLE_RATE, VAD
from .connection import RealtimeLink


@runtime_checkable
class UserTurnHooks(Protocol):
    @property
    def stopping(self) -> bool: ...

    def emit(self, event: ev.Event) -> None: ...

    def set_user_state(self, state: ev.UserState) -> None: ...

    def user_interrupts(self, *, server_cancels: bool = False) -> None:
        """The user spoke over the agent (long enough): stop its speech if it may be stopped."""
        ...

    def record_user_turn(self, text: str, timer: TurnTimer, *, source: str) -> None: ...

    def request_reply(self, timer: TurnTimer) -> None:
        """Our endpointing committed the turn: ask the model for the reply."""
        ...

    def settled(self) -> None: ...


@dataclass(slots=True)
class _Turn:
    timer: TurnTimer
    speech_start: float = 0.0
    item_id: str = ""


class UserTurns:
    def __init__(self, hooks: UserTurnHooks, *, vad: WebRTCVADConfig, turn: TurnConfig, local_vad: bool,
                 transcribes: bool) -> None:
        self.hooks = hooks
        self.vad_opts = vad
        self.turn = turn
        self.transcribes = transcribes  # the model transcribes input: a turn ends with its transcript
        self.link: RealtimeLink | None = None
        self.vad_in = AudioInput(rate=SAMPLE_RATE, frame_ms=vad.frame_ms) if local_vad else None
        self.vad = VAD(vad) if local_vad else None
        self._commit_timer: asyncio.TimerHandle | None = None
        self._turn: _Turn | None = None  # speaking (or waiting to be committed)
        self._local_commits: deque[_Turn] = deque()  # committed by us, waiting for the server's item id
        self._by_item: dict[str, _Turn] = {}  # committed, waiting for the transcript
        self._committed: deque[TurnTimer] = deque(maxlen=8)  # committed by the server, waiting for its response
        self._in_ms = 0.0
        self._in_clock: deque[tuple[float, float]] = deque(maxlen=3000)  # (input ms so far, perf_counter)

    @property
    def pending(self) -> bool:
        return (self._turn is not None or bool(self._by_item) or bool(self._local_commits)
                or (self.vad is not None and self.vad.speaking))

    def attach(self, link: RealtimeLink) -> None:
        self.link = link

    def cancel(self) -> None:
        if self._commit_timer is not None:
            self._commit_timer.cancel()
            self._commit_timer = None

    # -- input clock ---------------------------------------------------------------------------
    def audio_sent(self, ms: float, now: float) -> None:
        """`ms` more input audio went to the model at `now` (perf_counter)."""
        self._in_ms += ms
        self._in_clock.append((self._in_ms, now))

    def _perf_at(self, input_ms: float) -> float:
        """When the audio at `input_ms` into the input stream was pushed (perf_counter)."""
        marks = self._in_clock
        if not marks:
            return time.perf_counter()
        i = bisect.bisect_left(marks, (input_ms, -math.inf))
        return marks[min(i, len(marks) - 1)][1]

    # -- turn start / end ------------------------------------------------------------------------
    def _start(self, item_id: str = "") -> None:
        hooks = self.hooks
        hooks.set_user_state("speaking")
        hooks.emit(ev.VadSpeechStart())
        if self._turn is None:
            self._turn = _Turn(TurnTimer(turn_id=new_id("turn")), time.perf_counter(), item_id)
            hooks.emit(ev.TurnStarted(turn_id=self._turn.timer.turn_id, source="audio"))

    def speech_started(self, d: dict[str, Any]) -> None:
        self._start(d.get("item_id") or "")
        self.hooks.user_interrupts(server_cancels=True)  # the session asked for interrupt_response

    def speech_stopped(self, d: dict[str, Any]) -> None:
        hooks = self.hooks
        if self._turn is None:
            self._start(d.get("item_id") or "")
        turn = self._turn
        assert turn is not None
        turn.timer.last_voice = self._perf_at(float(d.get("audio_end_ms") or 0))
        silence = self.vad_opts.min_silence_ms + self.turn.min_endpointing_delay_ms
        hooks.emit(ev.VadSpeechEnd(speech_duration_ms=max(0.0, (turn.timer.last_voice - turn.speech_start) * 1000),
                                   silence_duration_ms=float(silence)))
        hooks.set_user_state("listening")

    def committed(self, d: dict[str, Any]) -> None:
        item_id = d.get("item_id") or ""
        if self._local_commits:
            turn = self._local_commits.popleft()
        else:
            turn = self._turn or _Turn(TurnTimer(turn_id=new_id("turn")), time.perf_counter())
            if self._turn is None:
                self.hooks.emit(ev.TurnStarted(turn_id=turn.timer.turn_id, source="audio"))
            self._turn = None
            turn.timer.committed = time.perf_counter()
            if turn.timer.last_voice is None:
                turn.timer.last_voice = turn.timer.committed
            self._committed.append(turn.timer)
        turn.item_id = item_id
        if self.transcribes:
            self._by_item[item_id] = turn  # the turn ends with its transcript
        else:
            self._end(turn, "")

    def take_committed(self) -> TurnTimer:
        """The timer of the turn the server is now answering on its own."""
        if self._committed:
            return self._committed.popleft()
        now = time.perf_counter()
        return TurnTimer(turn_id=new_id("turn"), last_voice=now, committed=now)

    def transcript(self, item_id: str, text: str) -> None:
        turn = self._by_item.pop(item_id, None)
        text = text.strip()
        if text:
            self.hooks.emit(ev.SttResult(text=text, is_final=True))
        if turn is not None:
            self._end(turn, text)

    def _end(self, turn: _Turn, text: str) -> None:
        self.hooks.record_user_turn(text, turn.timer, source="audio")
        self.hooks.settled()

    # -- local turn detection ------------------------------------------------------------------------
    def push_local(self, data: Any, sample_rate: int, channels: int) -> None:
        """The same user audio, through our VAD (local turn detection only)."""
        if self.vad_in is None:
            return
        for frame in self.vad_in.push(data, sample_rate, channels):
            self._local_frame(frame)

    def _local_frame(self, frame: np.ndarray) -> None:
        hooks, vad = self.hooks, self.vad
        assert vad is not None
        tr = vad.process(frame)
        if tr is None:
            if vad.speaking:
                self._maybe_interrupt()
            return
        if tr.kind == "start":
            self.cancel()  # speech resumed before the commit: the same turn goes on
            self._start()
            self._maybe_interrupt()
            return
        turn = self._turn
        assert turn is not None
        turn.timer.last_voice = time.perf_counter() - tr.silence_ms / 1000
        hooks.emit(ev.VadSpeechEnd(speech_duration_ms=tr.speech_ms, silence_duration_ms=tr.silence_ms))
        hooks.set_user_state("listening")
        delay = self.turn.min_endpointing_delay_ms / 1000
        self._commit_timer = asyncio.get_running_loop().call_later(delay, self._commit)

    def _maybe_interrupt(self) -> None:
        assert self.vad is not None
        if self.vad.speech_ms >= self.turn.min_interruption_duration_ms:
            self.hooks.user_interrupts()

    def _commit(self) -> None:
        """Our endpointing decided the turn is over: commit the buffer and ask for a reply."""
        self._commit_timer = None
        turn, self._turn = self._turn, None
        if turn is None or self.hooks.stopping or self.link is None:
            return
        turn.timer.committed = time.perf_counter()
        self._local_commits.append(turn)
        self.link.commit()
        self.hooks.request_reply(turn.timer)
