"""RealtimeSession: a live conversation with a speech-to-speech model.

The same surface as the cascaded AgentSession (SessionCore: transport, event sink and typed
events, ToolExecutor, say / interrupt / end / push_text / operator_action, wait_closed), with
the model in place of STT → LLM → TTS:

transport audio in → 24 kHz pcm16 → `input_audio_buffer.append` ─▶ model (server VAD, or
our VAD + commit + response.create) ─▶ audio deltas → Playout (paced) → transport.
The user side (UserTurns) and the agent side (ReplyDriver) see the session only as their
`UserTurnHooks` / `ReplyHooks`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from runtime.provider_configs import TurnConfig, WebRTCVADConfig
from runtime.tool_types import ToolInvocation

from .. import events as ev
from ..audio import AudioInput
from ..clock import Ticker
from ..interfaces import EventSink, ToolExecutor, Transport
from ..playout import Playout, PlayoutJob
from ..providers.base import ProviderError
from ..session_core import AudioState, SessionCore
from ..speech import SpeechHandle, TurnTimer, new_id
from .connection import RATE, RealtimeLink, RealtimeModel, tool_schemas
from .digest import EventDigest
from .replies import ReplyDriver
from .user_turns import UserTurns

log = logging.getLogger(__name__)


@dataclass
class RealtimeOptions:
    instructions: str = "You are a helpful voice assistant."
    session_id: str = ""
    agent_id: str = ""
    turn_detection: Literal["server_vad", "local"] = "server_vad"
    vad: WebRTCVADConfig = field(default_factory=WebRTCVADConfig)
    turn: TurnConfig = field(default_factory=TurnConfig)
    output_frame_ms: int = 20
    audio_event_interval_s: float = 1.0
    realtime_event_interval_s: float = 1.0
    max_realtime_events_per_s: int = 20
    record_audio_lag: bool = False  # keep per-delta "arrived → sent to transport" lags (benchmarks)
    vision: bool = False  # video input is not sent to realtime models (yet)


class RealtimeSession(SessionCore):
    options: RealtimeOptions

    def __init__(self, *, options: RealtimeOptions, model: RealtimeModel, transport: Transport,
                 tools: ToolExecutor | None = None, sink: EventSink | None = None,
                 user_data: dict[str, Any] | None = None, ticker: Ticker | None = None) -> None:
        super().__init__(options=options, transport=transport, sink=sink, user_data=user_data, ticker=ticker)
        self.model = model
        # the model hears and speaks itself: callers that ask "does it take speech / make speech"
        # find it here; transports size their output track from `session.tts.sample_rate`
        self.llm = self.stt = self.tts = model
        self.tools = tools
        self.text_only = False
        self.server_vad = options.turn_detection == "server_vad"
        # benchmarks: per audio delta, socket read → its first sample at the transport (minus the wait
        # for audio ahead of it), and socket read → queued for playout (our handling alone)
        self.audio_lag_ms: deque[float] | None = deque(maxlen=100_000) if options.record_audio_lag else None
        self.delta_handling_ms: deque[float] | None = deque(maxlen=100_000) if options.record_audio_lag else None
        self.replies = ReplyDriver(self, emit=self.emit, spawn=self.spawn, turn=options.turn, tools=tools,
                                   audio_lag_ms=self.audio_lag_ms, delta_handling_ms=self.delta_handling_ms)
        # the session's token usage so far (from every response.done), audio and text apart
        self.usage: dict[str, int] = dict.fromkeys(
            ("input_tokens", "output_tokens", "total_tokens", "input_audio_tokens", "input_text_tokens",
             "cached_tokens", "output_audio_tokens", "output_text_tokens", "responses"), 0)
        self._link: RealtimeLink | None = None
        self._digest = EventDigest(interval_s=options.realtime_event_interval_s,
                                   max_per_s=options.max_realtime_events_per_s)
        self.audio_state = AudioState(frame_ms=20, vad_enabled=True, vad_sensitivity=options.vad.sensitivity)
        self._audio_in = AudioInput(rate=RATE, frame_ms=20)  # what the model hears
        self.user = UserTurns(self, vad=options.vad, turn=options.turn,
                              local_vad=not self.server_vad and options.vad.enabled,
                              transcribes=bool(model.transcription_model))

    @property
    def current_speech(self) -> SpeechHandle | None:
        reply = self.replies.current
        return reply.handle if reply is not None else None

    def provider_error(self, err: ProviderError) -> None:
        self._error(err.source, str(err), kind=err.kind)  # as before the SessionCore split: no attempt

    def add_usage(self, usage: dict[str, Any]) -> None:
        u = self.usage
        ind, outd = usage.get("input_token_details") or {}, usage.get("output_token_details") or {}
        for key, value in (("input_tokens", usage.get("input_tokens")), ("output_tokens", usage.get("output_tokens")),
                           ("total_tokens", usage.get("total_tokens")), ("input_audio_tokens", ind.get("audio_tokens")),
                           ("input_text_tokens", ind.get("text_tokens")), ("cached_tokens", ind.get("cached_tokens")),
                           ("output_audio_tokens", outd.get("audio_tokens")),
                           ("output_text_tokens", outd.get("text_tokens"))):
            u[key] += int(value or 0)
        u["responses"] += 1

    # -- lifecycle -----------------------------------------------------------------------------------
    def session_config(self) -> dict[str, Any]:
        """The `session.update` payload for this agent."""
        o, v, t = self.options, self.options.vad, self.options.turn
        turn_detection = None
        if self.server_vad:
            turn_detection = {"type": "server_vad", "threshold": round(1.0 - v.sensitivity, 2),
                              "prefix_padding_ms": v.padding_ms,
                              "silence_duration_ms": v.min_silence_ms + t.min_endpointing_delay_ms,
                              "create_response": True, "interrupt_response": t.allow_interruptions}
        transcription = {"model": self.model.transcription_model} if self.model.transcription_model else None
        return {
            "type": "realtime", "instructions": o.instructions, "output_modalities": ["audio"],
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": RATE}, "transcription": transcription,
                                "turn_detection": turn_detection},
                      "output": {"format": {"type": "audio/pcm", "rate": RATE}, "voice": self.model.voice}},
            "tools": tool_schemas(self.tools.schemas()) if self.tools is not None else [],
            "tool_choice": "auto",
        }

    def _open(self) -> None:
        self._playout = Playout(sample_rate=RATE, frame_ms=self.options.output_frame_ms, sink=self._write_frame,
                                ticker=self._ticker, on_frame=self._on_out_frame, on_drained=self.replies.on_drained,
                                on_cut=self.transport.clear_audio,
                                lead_frames=getattr(self.transport, "output_lead_frames", 1))

    async def _connect_model(self) -> None:
        try:
            self._link = await self.model.connect()
        except ProviderError as err:
            self._error("llm", str(err), kind=err.kind, recoverable=False)
            self._set_status("error")
            await self.stop("realtime_connect_failed")
            raise
        self._keep(self._link.start(self._on_send_error))
        assert self._playout is not None
        self.replies.attach(self._playout, self._link)
        self.user.attach(self._link)
        self._link.session_update(self.session_config())
        self.spawn(self._recv_loop(), "realtime-recv")

    async def _teardown(self) -> None:
        self.user.cancel()
        self.replies.cancel_all("session_end")
        for name, payload in self._digest.flush(time.monotonic()):
            self.emit(ev.RealtimeEvent(name=name, payload=payload))
        if self._link is not None:
            await self._link.aclose()

    def idle(self) -> bool:
        return self.replies.idle and not self.user.pending

    # -- the stages' hooks (user_turns.UserTurnHooks, replies.ReplyHooks) --------------------------
    def user_interrupts(self, *, server_cancels: bool = False) -> None:
        self.replies.interrupt(reason="user_speech", server_cancels=server_cancels)

    def request_reply(self, timer: TurnTimer) -> None:
        self.replies.schedule(SpeechHandle(source="generate_reply", user_initiated=True, timer=timer,
                                           allow_interruptions=self.options.turn.allow_interruptions))

    def take_committed_turn(self) -> TurnTimer:
        return self.user.take_committed()

    def tool_invocation(self, speech: SpeechHandle) -> ToolInvocation:
        return ToolInvocation(session=self, speech_handle=speech, user_data=self.user_data, session_id=self.id,
                              agent_id=self.options.agent_id)

    def report_failure(self, source: str, message: str, *, kind: str) -> None:
        self._error(source, message, kind=kind)

    def _on_send_error(self, exc: Exception) -> None:
        if not self._stopping:
            self._error("llm", f"realtime send failed: {type(exc).__name__}: {exc}", kind="connection",
                        recoverable=False)
            self.end("realtime_disconnected")

    # -- server events ---------------------------------------------------------------------------------
    async def _recv_loop(self) -> None:
        link = self._link
        assert link is not None
        while True:
            try:
                raw = await link.recv()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the socket closed or broke
                if not self._stopping:
                    self._error("llm", f"realtime connection lost: {type(exc).__name__}: {exc}", kind="connection",
                                recoverable=False)
                    self.end("realtime_disconnected")
                return
            perf, mono = time.perf_counter(), time.monotonic()
            try:
                d = json.loads(raw)
                if not isinstance(d, dict):
                    raise ValueError("not an object")
            except ValueError:
                self._error("llm", "the realtime server sent a message that is not a JSON event", kind="garbage")
                continue
            try:
                self._on_server_event(d, raw, perf, mono)
            except Exception as exc:  # noqa: BLE001 - one bad event must not end the session
                log.exception("realtime event %s failed", d.get("type"))
                self._error("session", f"handling {d.get('type')}: {type(exc).__name__}: {exc}")

    def _on_server_event(self, d: dict[str, Any], raw: bytes, perf: float, mono: float) -> None:
        t = d.get("type", "")
        r = self.replies
        if t == "response.output_audio.delta":
            r.on_audio_delta(d, perf, mono)
        elif t == "response.output_audio_transcript.delta":
            r.on_transcript_delta(d)
        elif t == "response.output_audio_transcript.done":
            r.on_transcript_done(d)
        elif t == "response.output_audio.done":
            r.on_audio_done(d)
        elif t == "response.created":
            r.on_response_created(d)
        elif t == "response.done":
            r.on_response_done(d)
        elif t == "response.function_call_arguments.done":
            r.on_call_done(d)
        elif t == "input_audio_buffer.speech_started":
            self.user.speech_started(d)
        elif t == "input_audio_buffer.speech_stopped":
            self.user.speech_stopped(d)
        elif t == "input_audio_buffer.committed":
            self.user.committed(d)
        elif t == "conversation.item.input_audio_transcription.completed":
            self.user.transcript(d.get("item_id") or "", d.get("transcript") or "")
        elif t == "conversation.item.input_audio_transcription.failed":
            err = (d.get("error") or {}).get("message") or "transcription failed"
            self._error("stt", f"realtime input transcription failed: {err}", kind="status")
            self.user.transcript(d.get("item_id") or "", "")
        elif t == "error":
            self._on_server_error(d)
        for name, payload in self._digest.feed(d, mono):
            self.emit(ev.RealtimeEvent(name=name, payload=payload))
        if self._listeners.get("server_event") or self._listeners.get(f"server_event:{t}"):
            typed = self._link.parse(raw) if self._link is not None else d
            for key in ("server_event", f"server_event:{t}"):
                for cb in self._listeners.get(key, ()):
                    try:
                        cb(typed)
                    except Exception:
                        log.exception("server event listener failed on %s", t)

    def _on_server_error(self, d: dict[str, Any]) -> None:
        err = d.get("error") or {}
        code = err.get("code") or ""
        if code == "response_cancel_not_active":
            return  # a cancel that crossed the response's end: harmless
        if code == "conversation_already_has_active_response":
            self.replies.on_rejected()  # the server's own (VAD) response won the race; ours goes next
            return
        self._error("llm", f"realtime error {code or err.get('type')}: {err.get('message')}", kind=code or "status")

    # -- audio in (synchronous, per frame) ---------------------------------------------------------------
    def push_audio(self, data: Any, sample_rate: int, channels: int = 1) -> None:
        if self._link is not None:  # nothing to send the audio to before the model is connected
            super().push_audio(data, sample_rate, channels)

    def _decode_audio(self, data: Any, sample_rate: int, channels: int) -> list[np.ndarray]:
        frames = super()._decode_audio(data, sample_rate, channels)
        self.user.push_local(data, sample_rate, channels)
        return frames

    def _frames_in(self, frames: Iterable[np.ndarray]) -> None:
        assert self._link is not None
        now = time.perf_counter()
        for frame in frames:
            self._meter_in(frame)
            self._link.append_audio(frame)
            self.user.audio_sent(frame.size * 1000 / RATE, now)

    # -- video ----------------------------------------------------------------------------------------------
    def push_video_frame(self, image: bytes, mime: str = "image/jpeg") -> None:
        """Realtime models here get audio and text only; video frames are ignored."""

    # -- text in ----------------------------------------------------------------------------------------------
    def push_text(self, text: str, *, source: str = "local", participant_identity: str = "") -> SpeechHandle | None:
        """User text: a user message item and a reply, at once."""
        text = self._text_in(text, source, participant_identity)
        if not text or self._stopping or self._link is None:
            return None
        self.replies.interrupt(reason="user_speech")
        now = time.perf_counter()
        timer = TurnTimer(turn_id=new_id("turn"), last_voice=now, committed=now)
        self.emit(ev.TurnStarted(turn_id=timer.turn_id, source="text"))
        self.record_user_turn(text, timer, source="text")
        self._link.item_create({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
        h = SpeechHandle(source="generate_reply", user_initiated=True, timer=timer,
                         allow_interruptions=self.options.turn.allow_interruptions)
        self.replies.schedule(h)
        return h

    # -- agent speech ------------------------------------------------------------------------------------------
    def say(self, text: str, *, allow_interruptions: bool = True, add_to_history: bool = True) -> SpeechHandle:
        """Speak `text` in the model's voice (a response told to say exactly this, no tools)."""
        h = SpeechHandle(source="say", text=text, allow_interruptions=allow_interruptions,
                         add_to_history=add_to_history)
        params: dict[str, Any] = {
            "instructions": f"Say exactly the following text, word for word, and nothing else:\n{text}",
            "tool_choice": "none"}
        if not add_to_history:
            params["conversation"] = "none"
        self.replies.schedule(h, params)
        return h

    def generate_reply(self, *, instructions: str | None = None, user_input: str | None = None,
                       allow_interruptions: bool = True) -> SpeechHandle:
        if user_input and self._link is not None:
            self.add_item({"role": "user", "content": user_input})
            self._link.item_create({"type": "message", "role": "user",
                                    "content": [{"type": "input_text", "text": user_input}]})
        params = {"instructions": f"{self.options.instructions}\n\n{instructions}"} if instructions else {}
        h = SpeechHandle(source="generate_reply", instructions=instructions, allow_interruptions=allow_interruptions)
        self.replies.schedule(h, params)
        return h

    def interrupt(self, reason: str = "api") -> bool:
        """Stop the current speech now; True if one was stopped (see AgentSession.interrupt)."""
        return self.replies.interrupt(reason=reason)

    # -- audio out ----------------------------------------------------------------------------------------------
    def _write_frame(self, frame: np.ndarray) -> None:
        self.transport.write_audio(frame, RATE)

    def _on_speech_frame(self, job: PlayoutJob, now: float) -> None:
        self.replies.on_out_frame(job, now)
        self.audio_state.frames_sent += 1
