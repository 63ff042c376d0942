"""AgentSession: one live conversation. Wires the stages together and owns the state.

audio in → AudioInput (16 kHz mono) → VAD → UtteranceBuffer → STT → Endpointing →
user turn → ReplyGenerator (LLM + tools → sentences → TTS) → Playout → transport.
The surface it shares with RealtimeSession (events, lifecycle, hooks) is SessionCore.
The stages see the session only as the Protocols they declare: the Endpointer's
`EndpointHooks`, the ReplyGenerator's `ReplyStage` and `ReplyHooks`.
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

from runtime.provider_configs import TurnConfig, WebRTCVADConfig
from runtime.tool_types import ToolInvocation

from . import events as ev
from .apm import AudioProcessor
from .audio import AudioInput, level_dbfs
from .clock import Ticker
from .generation import ReplyGenerator, ReplyStage
from .interfaces import EventSink, ToolExecutor, Transport
from .playout import Playout, PlayoutJob
from .providers.base import LLM, STT, TTS
from .session_core import AudioState, SessionCore
from .speech import SpeechHandle, SpeechSource, TurnTimer, can_interrupt, new_id
from .turns import Endpointer
from .vad import SAMPLE_RATE, VAD, UtteranceBuffer


@dataclass
class SessionOptions:
    instructions: str = "You are a helpful voice assistant."
    session_id: str = ""
    agent_id: str = ""
    vad: WebRTCVADConfig = field(default_factory=WebRTCVADConfig)
    turn: TurnConfig = field(default_factory=TurnConfig)
    vision: bool = False
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
        self._current: SpeechHandle | None = None
        self._speech_queue: deque[SpeechHandle] = deque()
        self._speech_wakeup: asyncio.Event | None = None
        self._replies: ReplyStage | None = None
        vad = options.vad
        self.audio_state = AudioState(frame_ms=vad.frame_ms, vad_enabled=vad.enabled and stt is not None,
                                      vad_sensitivity=vad.sensitivity)
        self._audio_in = AudioInput(rate=SAMPLE_RATE, frame_ms=vad.frame_ms)
        self._vad = VAD(vad)
        self._utterance = UtteranceBuffer(rate=SAMPLE_RATE, padding_ms=vad.padding_ms,
                                          frame_samples=self._vad.frame_samples)
        self._apm: AudioProcessor | None = None
        self.endpointer = Endpointer(self, stt, options.turn)
        self._latest_image: tuple[float, str] | None = None
        self._image_pending = False

    @property
    def current_speech(self) -> SpeechHandle | None:
        return self._current

    # -- lifecycle hooks (SessionCore.start / stop) ----------------------------------------------
    def _open(self) -> None:
        self._speech_wakeup = asyncio.Event()
        if self.tts is not None:
            self._playout = Playout(sample_rate=self.tts.sample_rate, frame_ms=self.options.output_frame_ms,
                                    sink=self._write_frame, ticker=self._ticker, on_frame=self._on_out_frame,
                                    on_drained=self._on_drained, on_cut=self.transport.clear_audio,
                                    lead_frames=getattr(self.transport, "output_lead_frames", 1))
        self._replies = ReplyStage(llm=self.llm, tts=self.tts, tools=self.tools,
                                   max_tool_steps=self.options.turn.max_tool_steps, playout=self._playout,
                                   pause_gate=self.pause_gate, emit=self.emit, spawn=self.spawn, hooks=self)
        vad = self.options.vad  # audio-in processing before VAD is part of the VAD config
        if vad.echo_cancellation or vad.noise_suppression:
            try:
                self._apm = AudioProcessor(echo_cancellation=vad.echo_cancellation,
                                           noise_suppression=vad.noise_suppression,
                                           high_pass_filter=True)
            except Exception as exc:  # noqa: BLE001
                self._error("audio", f"audio processing unavailable: {exc}")

    def _on_active(self) -> None:
        self.spawn(self._speech_loop(), "speech-loop")

    async def _teardown(self) -> None:
        self.endpointer.cancel()
        for h in [self._current, *self._speech_queue]:
            if h is not None and not h.done():
                self._cancel_speech(h, reason="session_end", emit=h is self._current)
        self._speech_queue.clear()

    def _on_pause(self) -> None:
        # an utterance being heard or endpointed is abandoned: nothing said now becomes a turn
        self.endpointer.cancel()
        if self._vad.speaking:
            self._vad.reset()
            self._utterance.take()
        self.set_user_state("listening")
        self.settled()

    def idle(self) -> bool:
        return (self._current is None and not self._speech_queue and not self.endpointer.pending
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
            self.set_user_state("speaking")
            self.emit(ev.VadSpeechStart())
            self.endpointer.on_speech_start()
            self._maybe_interrupt_by_voice()
        else:
            self.emit(ev.VadSpeechEnd(speech_duration_ms=tr.speech_ms, silence_duration_ms=tr.silence_ms))
            self.set_user_state("listening")
            pcm = self._utterance.take()
            self.endpointer.on_speech_end(pcm, self._audio_in.rate, silence_s=tr.silence_ms / 1000)

    def _maybe_interrupt_by_voice(self) -> None:
        # per voiced frame: nothing to interrupt is the usual case, decided without a call
        if self._current is not None and self._vad.speech_ms >= self.options.turn.min_interruption_duration_ms:
            self.interrupt(reason="user_speech")

    # -- the Endpointer's hooks (turns.EndpointHooks) ----------------------------------------
    def user_speaking(self) -> bool:
        return self._vad.speaking

    def commit_user_turn(self, text: str, timer: TurnTimer, *, source: str) -> SpeechHandle | None:
        if self.pause_gate.paused:
            text = ""  # a transcript that lands while paused was not heard
        self.record_user_turn(text, timer, source=source)
        if not text:
            self.settled()
            return None
        return self._schedule(SpeechHandle(source="generate_reply", user_initiated=True, timer=timer,
                                           allow_interruptions=self.options.turn.allow_interruptions))

    # -- the ReplyGenerator's hooks (generation.ReplyHooks) ------------------------------------
    def chat_context(self, extra_instructions: str | None) -> list[dict[str, Any]]:
        system = self.options.instructions
        if extra_instructions:
            system = f"{system}\n\n{extra_instructions}"
        items = self.history[-self.options.max_history:]
        while items and items[0].get("role") == "tool":  # never start mid tool exchange
            items = items[1:]
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}, *items]
        image = self.take_image()
        if image is not None:
            for i in range(len(messages) - 1, 0, -1):
                if messages[i]["role"] == "user" and isinstance(messages[i]["content"], str):
                    messages[i] = {"role": "user", "content": [
                        {"type": "text", "text": messages[i]["content"]},
                        {"type": "image_url", "image_url": {"url": image}}]}
                    break
        return messages

    def tool_invocation(self, speech: SpeechHandle) -> ToolInvocation:
        return ToolInvocation(session=self, speech_handle=speech, user_data=self.user_data, session_id=self.id,
                              agent_id=self.options.agent_id)

    async def send_text(self, text: str) -> None:
        await self.transport.send_text(text)

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
        self.interrupt(reason="user_speech")
        turn_id = new_id("turn")
        self.emit(ev.TurnStarted(turn_id=turn_id, source="text"))
        now = time.perf_counter()
        timer = TurnTimer(turn_id=turn_id, last_voice=now, committed=now)
        return self.commit_user_turn(text, timer, source="text")

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
        assert self._speech_wakeup is not None and self._replies is not None
        while True:
            if not self._speech_queue:
                self._speech_wakeup.clear()
                await self._speech_wakeup.wait()
                continue
            await self.pause_gate.wait_open()  # paused: queued speech waits for resume
            if not self._speech_queue:
                continue
            h = self._speech_queue.popleft()
            self._current = h
            task = asyncio.get_running_loop().create_task(ReplyGenerator(self._replies, h).run(),
                                                          name=f"{h.id}-{self.id}")
            self._keep(task)
            h.on_cancel(lambda _reason, task=task: task.cancel())  # the LLM stream and tools in flight
            try:
                await asyncio.wait({task})
            finally:
                self._speech_finished(h)

    def interrupt(self, reason: str = "api") -> bool:
        """Stop the current speech now (audio stops within one frame); True if one was stopped.
        Who may stop which speech is `speech.can_interrupt`."""
        h = self._current
        if not can_interrupt(h, reason, allow_interruptions=self.options.turn.allow_interruptions):
            return False
        assert h is not None
        self._cancel_speech(h, reason=reason, emit=True)
        return True

    def _cancel_speech(self, h: SpeechHandle, *, reason: str, emit: bool) -> None:
        h.cancel(reason)  # the playout, the TTS requests and the reply task stop (see their subscriptions)
        if self._playout is not None and self._playout.job is None:
            self.audio_state.buffer_size = 0
        self.record_interruption(h, reason, emit=emit)
        if h.played_text and self.tts is not None and not self._stopping:
            self.publish_transcript(h.played_text, speaker="agent")
        self._speech_finished(h)

    def _speech_finished(self, h: SpeechHandle) -> None:
        """A speech is over (played out or cancelled): the next may start, or the agent listens."""
        h._mark_done()
        if self._current is h:
            self._current = None
        if not self._speech_queue:
            self.set_agent_state("listening")
        self.settled()

    # -- audio out -----------------------------------------------------------------------
    def _write_frame(self, frame: np.ndarray) -> None:
        if self._apm is not None and self._playout is not None:
            self._apm.process_render(frame, self._playout.rate)
        self.transport.write_audio(frame, self._rate_out())

    def _on_speech_frame(self, job: PlayoutJob, now: float) -> None:
        st = self.audio_state
        st.frames_sent += 1
        st.buffer_size = job.queued
        h = self._current
        if h is not None and h.id == job.speech_id and h.timer.first_audio is None:
            h.timer.first_audio = time.perf_counter()
            self.set_agent_state("speaking")

    def _on_drained(self, job: PlayoutJob) -> None:
        self.audio_state.buffer_size = 0
        self._flush_out_stats(job.speech_id)
        h = self._current
        if h is not None and h.id == job.speech_id:
            h.played_text = job.played_text()
        waiter = getattr(job, "drained", None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


__all__ = ["AgentSession", "SessionOptions", "AudioState", "SpeechHandle", "SpeechSource", "level_dbfs"]
