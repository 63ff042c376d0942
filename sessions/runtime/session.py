"""AgentSession: one live conversation. Wires the stages together and owns the state.

audio in → AudioInput (16 kHz mono) → VAD → UtteranceBuffer → STT → Endpointing →
user turn → ReplyGenerator (LLM + tools → sentences → TTS) → Playout → transport.
The surface it shares with RealtimeSession (events, lifecycle, hooks) is SessionCore.
"""
from __future__ import annotations

import asyncio
import base64
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import events as ev
from .apm import AudioProcessor
from .audio import AudioInput, level_dbfs
from .clock import Ticker
from .generation import ReplyGenerator
from .interfaces import EventSink, ToolExecutor, Transport
from .playout import Playout, PlayoutJob
from .providers.base import LLM, STT, TTS
from .session_core import AudioState, SessionCore
from .speech import SpeechHandle, SpeechSource, TurnTimer, new_id
from .turns import Endpointer, TurnOptions
from .vad import VAD, UtteranceBuffer, VADOptions


@dataclass
class SessionOptions:
    instructions: str = "You are a helpful voice assistant."
    session_id: str = ""
    agent_id: str = ""
    vad: VADOptions = field(default_factory=VADOptions)
    turn: TurnOptions = field(default_factory=TurnOptions)
    vision: bool = False
    echo_cancellation: bool = False
    noise_suppression: bool = False
    output_frame_ms: int = 20
    audio_event_interval_s: float = 1.0
    max_history: int = 200  # items kept in the LLM context (the system prompt is always sent)


class AgentSession(SessionCore):
    options: SessionOptions

    def __init__(self, *, options: SessionOptions, llm: LLM, transport: Transport, stt: STT | None = None,
                 tts: TTS | None = None, tools: ToolExecutor | None = None, sink: EventSink | None = None,
                 user_data: dict[str, Any] | None = None, ticker: Ticker | None = None) -> None:
        super().__init__(options=options, transport=transport, sink=sink, user_data=user_data, ticker=ticker)
        self.llm, self.stt, self.tts, self.tools = llm, stt, tts, tools
        self.text_only = stt is None or tts is None
        self._speech_queue: deque[SpeechHandle] = deque()
        self._speech_wakeup: asyncio.Event | None = None
        vad = options.vad
        self.audio_state = AudioState(frame_ms=vad.frame_ms, vad_enabled=vad.enabled and stt is not None,
                                      vad_sensitivity=vad.sensitivity)
        self._audio_in = AudioInput(rate=vad.sample_rate, frame_ms=vad.frame_ms)
        self._vad = VAD(vad)
        self._utterance = UtteranceBuffer(rate=vad.sample_rate, padding_ms=vad.padding_ms,
                                          frame_samples=self._vad.frame_samples)
        self._apm: AudioProcessor | None = None
        self.endpointer = Endpointer(self, options.turn)
        self._latest_image: tuple[float, str] | None = None
        self._image_pending = False

    # -- lifecycle hooks (SessionCore.start / stop) ----------------------------------------------
    def _open(self) -> None:
        self._speech_wakeup = asyncio.Event()
        if self.tts is not None:
            self._playout = Playout(sample_rate=self.tts.sample_rate, frame_ms=self.options.output_frame_ms,
                                    sink=self._write_frame, ticker=self._ticker, on_frame=self._on_out_frame,
                                    on_drained=self._on_drained)
        if self.options.echo_cancellation or self.options.noise_suppression:
            try:
                self._apm = AudioProcessor(echo_cancellation=self.options.echo_cancellation,
                                           noise_suppression=self.options.noise_suppression,
                                           high_pass_filter=True)
            except Exception as exc:  # noqa: BLE001
                self._error("audio", f"audio processing unavailable: {exc}")

    def _on_active(self) -> None:
        self._spawn(self._speech_loop(), "speech-loop")

    async def _teardown(self) -> None:
        self.endpointer.cancel()
        for h in [self.current_speech, *self._speech_queue]:
            if h is not None and not h.done():
                self._cancel_speech(h, reason="session_end", emit=h is self.current_speech)
        self._speech_queue.clear()

    def _on_pause(self) -> None:
        # an utterance being heard or endpointed is abandoned: nothing said now becomes a turn
        self.endpointer.cancel()
        if self._vad.speaking:
            self._vad.reset()
            self._utterance.take()
        self._set_user_state("listening")

    def idle(self) -> bool:
        return (self.current_speech is None and not self._speech_queue and not self.endpointer.pending
                and not self._vad.speaking)

    # -- audio in (synchronous, per frame) -----------------------------------------------
    def _frames_in(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            try:
                self._process_frame(frame)
            except Exception as exc:  # noqa: BLE001
                self.audio_state.frames_dropped += 1
                self._audio_error(f"{type(exc).__name__}: {exc}")

    def _process_frame(self, frame: np.ndarray) -> None:
        if self._apm is not None:
            frame = frame.copy()
            self._apm.process_capture(frame, self._audio_in.rate)
        self._meter_in(frame)
        if self.stt is None or not self.options.vad.enabled or self.status == "paused":
            return
        self._utterance.push(frame)
        tr = self._vad.process(frame)
        if tr is None:
            if self._vad.speaking:
                self._maybe_interrupt_by_voice()
            return
        if tr.kind == "start":
            self._utterance.begin()
            self._set_user_state("speaking")
            self.emit(ev.VadSpeechStart())
            self.endpointer.on_speech_start()
            self._maybe_interrupt_by_voice()
        else:
            self.emit(ev.VadSpeechEnd(speech_duration_ms=tr.speech_ms, silence_duration_ms=tr.silence_ms))
            self._set_user_state("listening")
            pcm = self._utterance.take()
            self.endpointer.on_speech_end(pcm, self._audio_in.rate, silence_s=tr.silence_ms / 1000)

    def _maybe_interrupt_by_voice(self) -> None:
        h = self.current_speech
        if h is None or h.done() or not h.allow_interruptions or not self.options.turn.allow_interruptions:
            return
        if self._vad.speech_ms >= self.options.turn.min_interruption_duration_ms:
            self.interrupt(reason="user_speech")

    # -- video (vision) ----------------------------------------------------------------
    def push_video_frame(self, image: bytes, mime: str = "image/jpeg") -> None:
        """Latest participant video frame (encoded). Sampled ~1/s while the user speaks; the
        newest sample goes with the next LLM request."""
        if not self.options.vision:
            return
        now = time.perf_counter()
        if self._latest_image is not None and now - self._latest_image[0] < 1.0:
            return
        if self.user_state != "speaking" and self._latest_image is not None:
            return
        self._latest_image = (now, f"data:{mime};base64,{base64.b64encode(image).decode()}")
        self._image_pending = True

    def take_image(self) -> str | None:
        if not self._image_pending or self._latest_image is None:
            return None
        self._image_pending = False
        return self._latest_image[1]

    # -- text in -------------------------------------------------------------------------
    def push_text(self, text: str, *, source: str = "local", participant_identity: str = "") -> SpeechHandle | None:
        """User text: ends a turn at once and starts a reply."""
        text = self._text_in(text, source, participant_identity)
        if not text or self._stopping:
            return None
        h = self.current_speech
        if h is not None and h.allow_interruptions and self.options.turn.allow_interruptions:
            self.interrupt(reason="user_speech")
        turn_id = new_id("turn")
        self.emit(ev.TurnStarted(turn_id=turn_id, source="text"))
        now = time.perf_counter()
        timer = TurnTimer(turn_id=turn_id, last_voice=now, committed=now)
        return self.commit_user_turn(text, timer, source="text")

    def commit_user_turn(self, text: str, timer: TurnTimer, *, source: str) -> SpeechHandle | None:
        if self.pause_gate.paused:
            text = ""  # a transcript that lands while paused was not heard
        self.turns += 1
        self.emit(ev.TurnEnded(turn_id=timer.turn_id, source=source, text=text,  # type: ignore[arg-type]
                               end_of_utterance_delay_ms=round(((timer.committed or 0) - (timer.last_voice or 0)) * 1000, 3)))
        if not text:
            return None
        self.add_item({"role": "user", "content": text})
        self._spawn(self.transport.publish_transcript(text, speaker="user", final=True), "transcript")
        return self._schedule(SpeechHandle(source="generate_reply", user_initiated=True, timer=timer,
                                           allow_interruptions=self.options.turn.allow_interruptions))

    # -- agent speech --------------------------------------------------------------------
    def say(self, text: str, *, allow_interruptions: bool = True, add_to_history: bool = True) -> SpeechHandle:
        return self._schedule(SpeechHandle(source="say", text=text, allow_interruptions=allow_interruptions,
                                           add_to_history=add_to_history))

    def generate_reply(self, *, instructions: str | None = None, user_input: str | None = None,
                       allow_interruptions: bool = True) -> SpeechHandle:
        if user_input:
            self.add_item({"role": "user", "content": user_input})
        return self._schedule(SpeechHandle(source="generate_reply", instructions=instructions,
                                           allow_interruptions=allow_interruptions))

    def _schedule(self, h: SpeechHandle) -> SpeechHandle:
        self.emit(ev.SpeechCreated(speech_id=h.id, source=h.source, user_initiated=h.user_initiated,
                                   allow_interruptions=h.allow_interruptions))
        if self._stopping:
            h._mark_done()
            return h
        self._speech_queue.append(h)
        if self._speech_wakeup is not None:
            self._speech_wakeup.set()
        return h

    async def _speech_loop(self) -> None:
        assert self._speech_wakeup is not None
        while True:
            if not self._speech_queue:
                self._speech_wakeup.clear()
                await self._speech_wakeup.wait()
                continue
            await self.pause_gate.wait_open()  # paused: queued speech waits for resume
            if not self._speech_queue:
                continue
            h = self._speech_queue.popleft()
            self.current_speech = h
            gen = ReplyGenerator(self, h)
            h._task = asyncio.get_running_loop().create_task(gen.run(), name=f"{h.id}-{self.id}")
            self._keep(h._task)
            try:
                await asyncio.wait({h._task})
            finally:
                h._mark_done()
                if self.current_speech is h:
                    self.current_speech = None
                if not self._speech_queue:
                    self._set_agent_state("listening")

    def interrupt(self, reason: str = "api") -> bool:
        """Stop the current speech now (audio stops within one frame); True if one was stopped.
        A speech created with allow_interruptions=False is only stopped by the session ending."""
        h = self.current_speech
        if h is None or h.done():
            return False
        if not h.allow_interruptions and reason == "user_speech":
            return False
        self._cancel_speech(h, reason=reason, emit=True)
        return True

    def _cancel_speech(self, h: SpeechHandle, *, reason: str, emit: bool) -> None:
        job: PlayoutJob | None = None
        if self._playout is not None and self._playout.job is not None and self._playout.job.speech_id == h.id:
            job = self._playout.clear()
            self.transport.clear_audio()
        h.interrupted = True
        played_ms = 0.0
        if job is not None:
            self.audio_state.buffer_size = 0
            h.played_text = job.played_text()
            played_ms = job.samples_played / self._playout.rate * 1000 if self._playout else 0.0
        elif self.tts is None:
            h.played_text = h.generated_text  # text agents: what was sent is what was "heard"
        if emit:
            self.emit(ev.Interrupted(speech_id=h.id, played_ms=round(played_ms, 1), played_text=h.played_text,
                                     reason=reason if reason in ("user_speech", "operator", "api", "session_end") else "api"))  # type: ignore[arg-type]
            self.emit(ev.ResponseCancelled(speech_id=h.id, reason=reason))
        if h.add_to_history and h.played_text:
            self.add_item({"role": "assistant", "content": h.played_text}, interrupted=True)
        if h.played_text and self.tts is not None and not self._stopping:
            self._spawn(self.transport.publish_transcript(h.played_text, speaker="agent", final=True), "transcript")
        if h._task is not None and not h._task.done():
            h._task.cancel()
        h._mark_done()
        if self.current_speech is h:
            self.current_speech = None
        if not self._speech_queue:
            self._set_agent_state("listening")

    # -- audio out -----------------------------------------------------------------------
    def _write_frame(self, frame: np.ndarray) -> None:
        if self._apm is not None and self._playout is not None:
            self._apm.process_render(frame, self._playout.rate)
        self.transport.write_audio(frame, self._rate_out())

    def _on_speech_frame(self, job: PlayoutJob, now: float) -> None:
        st = self.audio_state
        st.frames_sent += 1
        st.buffer_size = job.queued
        h = self.current_speech
        if h is not None and h.id == job.speech_id and h.timer.first_audio is None:
            h.timer.first_audio = time.perf_counter()
            self._set_agent_state("speaking")

    def _on_drained(self, job: PlayoutJob) -> None:
        self.audio_state.buffer_size = 0
        self._flush_out_stats(job.speech_id)
        h = self.current_speech
        if h is not None and h.id == job.speech_id:
            h.played_text = job.played_text()
        waiter = getattr(job, "drained", None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


__all__ = ["AgentSession", "SessionOptions", "AudioState", "SpeechHandle", "SpeechSource", "level_dbfs"]
