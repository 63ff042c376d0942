"""The user's side of a realtime session: when a turn starts, ends and what was said.

With server VAD the model's `input_audio_buffer.speech_started/stopped/committed` events
drive the turn; with local turn detection our VAD does, and we commit the input buffer and
ask for the reply ourselves after the endpointing delay. Either way the turn ends when the
server's transcript of it arrives (`stt_result`, `turn_ended`, a user history item).
"""
from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import events as ev
from ..audio import AudioInput
from ..speech import SpeechHandle, TurnTimer, new_id
from ..vad import VAD

if TYPE_CHECKING:
    from .session import RealtimeSession


@dataclass(slots=True)
class _Turn:
    timer: TurnTimer
    speech_start: float = 0.0
    item_id: str = ""


class UserTurns:
    def __init__(self, session: "RealtimeSession", *, local_vad: bool) -> None:
        self.s = session
        vad = session.options.vad
        self.vad_in = AudioInput(rate=vad.sample_rate, frame_ms=vad.frame_ms) if local_vad else None
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
        s = self.s
        s._set_user_state("speaking")
        s.emit(ev.VadSpeechStart())
        if self._turn is None:
            self._turn = _Turn(TurnTimer(turn_id=new_id("turn")), time.perf_counter(), item_id)
            s.emit(ev.TurnStarted(turn_id=self._turn.timer.turn_id, source="audio"))

    def speech_started(self, d: dict[str, Any]) -> None:
        self._start(d.get("item_id") or "")
        if self.s.options.turn.allow_interruptions:
            self.s.replies.interrupt(reason="user_speech", server_cancels=True)  # interrupt_response is on

    def speech_stopped(self, d: dict[str, Any]) -> None:
        s = self.s
        if self._turn is None:
            self._start(d.get("item_id") or "")
        turn = self._turn
        assert turn is not None
        turn.timer.last_voice = self._perf_at(float(d.get("audio_end_ms") or 0))
        silence = s.options.vad.min_silence_ms + s.options.turn.min_endpointing_delay_ms
        s.emit(ev.VadSpeechEnd(speech_duration_ms=max(0.0, (turn.timer.last_voice - turn.speech_start) * 1000),
                               silence_duration_ms=float(silence)))
        s._set_user_state("listening")

    def committed(self, d: dict[str, Any]) -> None:
        s = self.s
        item_id = d.get("item_id") or ""
        if self._local_commits:
            turn = self._local_commits.popleft()
        else:
            turn = self._turn or _Turn(TurnTimer(turn_id=new_id("turn")), time.perf_counter())
            if self._turn is None:
                s.emit(ev.TurnStarted(turn_id=turn.timer.turn_id, source="audio"))
            self._turn = None
            turn.timer.committed = time.perf_counter()
            if turn.timer.last_voice is None:
                turn.timer.last_voice = turn.timer.committed
            self._committed.append(turn.timer)
        turn.item_id = item_id
        if s.model.transcription_model:
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
            self.s.emit(ev.SttResult(text=text, is_final=True))
        if turn is not None:
            self._end(turn, text)

    def _end(self, turn: _Turn, text: str) -> None:
        s = self.s
        s.turns += 1
        t = turn.timer
        s.emit(ev.TurnEnded(turn_id=t.turn_id, source="audio", text=text,
                            end_of_utterance_delay_ms=round(((t.committed or 0) - (t.last_voice or 0)) * 1000, 3)))
        if text:
            s.add_item({"role": "user", "content": text})
            s._spawn(s.transport.publish_transcript(text, speaker="user", final=True), "transcript")

    # -- local turn detection ------------------------------------------------------------------------
    def push_local(self, data: Any, sample_rate: int, channels: int) -> None:
        """The same user audio, through our VAD (local turn detection only)."""
        if self.vad_in is None:
            return
        for frame in self.vad_in.push(data, sample_rate, channels):
            self._local_frame(frame)

    def _local_frame(self, frame: np.ndarray) -> None:
        s, vad = self.s, self.vad
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
        s.emit(ev.VadSpeechEnd(speech_duration_ms=tr.speech_ms, silence_duration_ms=tr.silence_ms))
        s._set_user_state("listening")
        delay = s.options.turn.min_endpointing_delay_ms / 1000
        self._commit_timer = asyncio.get_running_loop().call_later(delay, self._commit)

    def _maybe_interrupt(self) -> None:
        assert self.vad is not None
        s = self.s
        if s.replies.current is not None and self.vad.speech_ms >= s.options.turn.min_interruption_duration_ms:
            s.replies.interrupt(reason="user_speech")

    def _commit(self) -> None:
        """Our endpointing decided the turn is over: commit the buffer and ask for a reply."""
        s = self.s
        self._commit_timer = None
        turn, self._turn = self._turn, None
        if turn is None or s._stopping or s._link is None:
            return
        turn.timer.committed = time.perf_counter()
        self._local_commits.append(turn)
        s._link.commit()
        s.replies.schedule(SpeechHandle(source="generate_reply", user_initiated=True, timer=turn.timer,
                                        allow_interruptions=s.options.turn.allow_interruptions))
