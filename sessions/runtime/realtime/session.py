"""RealtimeSession: a live conversation with a speech-to-speech model.

The same surface as the cascaded AgentSession (transport, event sink and typed events,
ToolExecutor, say / interrupt / end / push_text / operator_action, wait_closed), with the
model in place of STT → LLM → TTS:

transport audio in → 24 kHz pcm16 → `input_audio_buffer.append` ─▶ model (server VAD, or
our VAD + commit + response.create) ─▶ audio deltas → Playout (paced) → transport.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .. import events as ev
from ..audio import AudioInput, MalformedAudio
from ..clock import Ticker
from ..interfaces import EventSink, ToolExecutor, Transport
from ..playout import Playout, PlayoutJob
from ..providers.base import ProviderError
from ..session import AudioState
from ..speech import SpeechHandle, TurnTimer, new_id
from ..turns import TurnOptions
from ..vad import VADOptions
from .connection import RATE, RealtimeLink, RealtimeModel, tool_schemas
from .digest import EventDigest
from .replies import ReplyDriver
from .user_turns import UserTurns

log = logging.getLogger(__name__)

Listener = Callable[[Any], None]


@dataclass
class RealtimeOptions:
    instructions: str = "You are a helpful voice assistant."
    session_id: str = ""
    agent_id: str = ""
    turn_detection: Literal["server_vad", "local"] = "server_vad"
    vad: VADOptions = field(default_factory=VADOptions)
    turn: TurnOptions = field(default_factory=TurnOptions)
    output_frame_ms: int = 20
    audio_event_interval_s: float = 1.0
    realtime_event_interval_s: float = 1.0
    max_realtime_events_per_s: int = 20
    record_audio_lag: bool = False  # keep per-delta "arrived → sent to transport" lags (benchmarks)
    vision: bool = False  # video input is not sent to realtime models (yet)


class RealtimeSession:
    def __init__(self, *, options: RealtimeOptions, model: RealtimeModel, transport: Transport,
                 tools: ToolExecutor | None = None, sink: EventSink | None = None,
                 user_data: dict[str, Any] | None = None, ticker: Ticker | None = None) -> None:
        self.options = options
        self.id = options.session_id or new_id("session")
        self.model = model
        # the model hears and speaks itself: callers that ask "does it take speech / make speech"
        # find it here; transports size their output track from `session.tts.sample_rate`
        self.llm = self.stt = self.tts = model
        self.tools = tools
        self.transport = transport
        self._sink = sink
        self.user_data: dict[str, Any] = user_data if user_data is not None else {}
        self.history: list[dict[str, Any]] = []
        self.participants: dict[str, ev.ParticipantInfo] = {}
        self.status: ev.SessionStatus = "initializing"
        self.agent_state: ev.AgentState = "initializing"
        self.user_state: ev.UserState = "listening"
        self.text_only = False
        self.room: tuple[str, str] | None = None
        self.turns = 0
        self.server_vad = options.turn_detection == "server_vad"
        self.current_speech: SpeechHandle | None = None
        # benchmarks: per audio delta, socket read → its first sample at the transport (minus the wait
        # for audio ahead of it), and socket read → queued for playout (our handling alone)
        self.audio_lag_ms: deque[float] | None = deque(maxlen=100_000) if options.record_audio_lag else None
        self.delta_handling_ms: deque[float] | None = deque(maxlen=100_000) if options.record_audio_lag else None
        self.replies = ReplyDriver(self)
        # the session's token usage so far (from every response.done), audio and text apart
        self.usage: dict[str, int] = dict.fromkeys(
            ("input_tokens", "output_tokens", "total_tokens", "input_audio_tokens", "input_text_tokens",
             "cached_tokens", "output_audio_tokens", "output_text_tokens", "responses"), 0)
        self._listeners: dict[str, list[Listener]] = {}
        self._ticker = ticker
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed: asyncio.Future[str] | None = None
        self._started_at = 0.0
        self._stopping = False
        self._link: RealtimeLink | None = None
        self._playout: Playout | None = None
        self._digest = EventDigest(interval_s=options.realtime_event_interval_s,
                                   max_per_s=options.max_realtime_events_per_s)
        self.audio_state = AudioState(frame_ms=20, vad_enabled=True, vad_sensitivity=options.vad.sensitivity)
        self._up = AudioInput(rate=RATE, frame_ms=20)  # what the model hears
        self.user = UserTurns(self, local_vad=not self.server_vad and options.vad.enabled)
        # aggregated audio counters
        self._in_frames = 0
        self._in_sq = 0.0
        self._in_samples = 0
        self._out_frames = 0
        self._out_sq = 0.0
        self._out_samples = 0
        self._last_audio_error = 0.0

    # -- events ------------------------------------------------------------------------------------
    def on(self, event_type: str, callback: Listener) -> Callable[[], None]:
        """Subscribe in-process: event types as in events.py, "*" for all of them, the per-frame
        streams "audio_in_frame" / "audio_out_frame", and "server_event" (every realtime server
        event, as the SDK's typed model) or "server_event:<type>" for one type."""
        self._listeners.setdefault(event_type, []).append(callback)
        return lambda: self._listeners.get(event_type, []).remove(callback)

    def emit(self, event: ev.Event) -> None:
        if self._sink is not None:
            try:
                self._sink.emit(event)
            except Exception:  # the sink must never take the session down
                log.exception("event sink failed on %s", event.type)
        for key in (event.type, "*"):
            for cb in self._listeners.get(key, ()):
                try:
                    cb(event)
                except Exception:
                    log.exception("listener failed on %s", event.type)

    def _error(self, source: str, message: str, *, kind: str = "", recoverable: bool = True) -> None:
        self.emit(ev.Error(source=source, message=message, error_kind=kind, recoverable=recoverable))  # type: ignore[arg-type]

    def provider_error(self, err: ProviderError) -> None:
        self._error(err.source, str(err), kind=err.kind)

    def _set_status(self, new: ev.SessionStatus) -> None:
        if new != self.status:
            old, self.status = self.status, new
            self.emit(ev.StateChanged(old_state=old, new_state=new))

    def _set_agent_state(self, new: ev.AgentState) -> None:
        if new != self.agent_state:
            old, self.agent_state = self.agent_state, new
            self.audio_state.agent_speaking = new == "speaking"
            self.emit(ev.AgentStateChanged(old_state=old, new_state=new))

    def _set_user_state(self, new: ev.UserState) -> None:
        if new != self.user_state:
            old, self.user_state = self.user_state, new
            self.audio_state.speaking = new == "speaking"
            self.emit(ev.UserStateChanged(old_state=old, new_state=new))

    def add_item(self, item: dict[str, Any], *, interrupted: bool = False) -> None:
        self.history.append(item)
        self.emit(ev.ConversationItemAdded(role=item["role"], content=item.get("content"),
                                           tool_calls=item.get("tool_calls") or [],
                                           tool_call_id=item.get("tool_call_id"), interrupted=interrupted))

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

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        self._started_at = time.perf_counter()
        if self._ticker is None:
            self._ticker = Ticker.shared(self.options.output_frame_ms / 1000)
        self._playout = Playout(sample_rate=RATE, frame_ms=self.options.output_frame_ms, sink=self._write_frame,
                                ticker=self._ticker, on_frame=self._on_out_frame, on_drained=self.replies.on_drained)
        self.emit(ev.SessionStarted(session_id=self.id, agent_id=self.options.agent_id,
                                    transport=getattr(self.transport, "name", ""), text_only=False))
        try:
            self._link = await self.model.connect()
        except ProviderError as err:
            self._error("llm", str(err), kind=err.kind, recoverable=False)
            self._set_status("error")
            await self.stop("realtime_connect_failed")
            raise
        self._keep(self._link.start(self._on_send_error))
        self._link.session_update(self.session_config())
        self._spawn(self._recv_loop(), "realtime-recv")
        try:
            await self.transport.connect(self)
        except Exception as exc:  # noqa: BLE001
            self._error("transport", f"connect failed: {exc}", recoverable=False)
            self._set_status("error")
            await self.stop("transport_error")
            raise
        self._set_status("connected")
        self._set_status("active")
        self._set_agent_state("listening")
        self.audio_state.stream_active = True

    async def stop(self, reason: str = "stopped") -> None:
        if self._stopping:
            if self._closed is not None:
                await asyncio.shield(self._closed)
            return
        self._stopping = True
        self.user.cancel()
        self.replies.cancel_all("session_end")
        for name, payload in self._digest.flush(time.monotonic()):
            self.emit(ev.RealtimeEvent(name=name, payload=payload))
        if self._link is not None:
            await self._link.aclose()
        me = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not me]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        if self._playout is not None:
            self._playout.clear()
        try:
            await asyncio.wait_for(self.transport.aclose(), 5.0)
        except Exception as exc:  # noqa: BLE001
            self._error("transport", f"close failed: {exc}")
        self.audio_state.stream_active = False
        if self.status != "error":
            self._set_status("disconnected")
        self.emit(ev.SessionStopped(reason=reason, turns=self.turns,
                                    duration_s=round(time.perf_counter() - self._started_at, 3)))
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(reason)

    def end(self, reason: str = "ended") -> asyncio.Task[None]:
        """Ask the session to stop (from a callback, a tool or an operator)."""
        t = asyncio.get_running_loop().create_task(self.stop(reason), name=f"stop-{self.id}")
        self._keep(t)
        return t

    async def wait_closed(self) -> str:
        assert self._closed is not None, "session not started"
        return await asyncio.shield(self._closed)

    @property
    def closed(self) -> bool:
        return self._closed is not None and self._closed.done()

    def pause(self) -> None:
        if self.status == "active":
            self._set_status("paused")
            self.audio_state.muted = True

    def resume(self) -> None:
        if self.status == "paused":
            self._set_status("active")
            self.audio_state.muted = False

    def idle(self) -> bool:
        return self.replies.idle and not self.user.pending

    async def wait_idle(self, poll_s: float = 0.02) -> None:
        while not self.idle() and not self.closed:
            await asyncio.sleep(poll_s)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        t = asyncio.get_running_loop().create_task(coro, name=f"{name}-{self.id}")
        self._keep(t)
        return t

    def _keep(self, t: asyncio.Task[Any]) -> None:
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

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
        """One frame of user audio: bytes/memoryview/int16 ndarray, any rate, interleaved."""
        st = self.audio_state
        if self.status != "active" or self._stopping or self._link is None:
            return
        try:
            frames = self._up.push(data, sample_rate, channels)
            self.user.push_local(data, sample_rate, channels)
        except MalformedAudio as exc:
            st.frames_dropped += 1
            self._audio_error(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - never die from one bad frame
            st.frames_dropped += 1
            self._audio_error(f"{type(exc).__name__}: {exc}")
            return
        st.sample_rate, st.channels = sample_rate, channels
        st.last_audio_time = time.time()
        st.frames_received += 1
        now = time.perf_counter()
        for frame in frames:
            listeners = self._listeners.get("audio_in_frame")
            if listeners:
                for cb in listeners:
                    cb(frame)
            self._link.append_audio(frame)
            self.user.audio_sent(frame.size * 1000 / RATE, now)
            x = frame.astype(np.float32)
            self._in_sq += float(np.dot(x, x))
            self._in_samples += frame.size
            self._in_frames += 1
            if self._in_samples >= RATE * self.options.audio_event_interval_s:
                self._flush_in_stats()

    def _audio_error(self, message: str) -> None:
        now = time.perf_counter()
        if now - self._last_audio_error >= 1.0:
            self._last_audio_error = now
            self._error("audio", f"dropped malformed audio frame: {message}", kind="malformed_frame")

    def _flush_in_stats(self) -> None:
        n = max(1, self._in_samples)
        rms = (self._in_sq / n) ** 0.5 / 32768.0
        self.emit(ev.AudioReceived(frames=self._in_frames, duration_ms=round(n / RATE * 1000, 1),
                                   level_dbfs=round(_db(rms), 1), sample_rate=self._up.last_rate,
                                   channels=self._up.last_channels, dropped_frames=self.audio_state.frames_dropped))
        self._in_frames = 0
        self._in_sq = 0.0
        self._in_samples = 0

    # -- video ----------------------------------------------------------------------------------------------
    def push_video_frame(self, image: bytes, mime: str = "image/jpeg") -> None:
        """Realtime models here get audio and text only; video frames are ignored."""

    # -- text in ----------------------------------------------------------------------------------------------
    def push_text(self, text: str, *, source: str = "local", participant_identity: str = "") -> SpeechHandle | None:
        """User text: a user message item and a reply, at once."""
        text = text.strip()
        self.emit(ev.TextReceived(text=text, participant_identity=participant_identity,
                                  source=source if source in ("transport", "operator", "api", "local") else "local"))  # type: ignore[arg-type]
        if not text or self._stopping or self._link is None:
            return None
        cur = self.replies.current
        if cur is not None and cur.handle.allow_interruptions and self.options.turn.allow_interruptions:
            self.replies.interrupt(reason="user_speech")
        now = time.perf_counter()
        timer = TurnTimer(turn_id=new_id("turn"), last_voice=now, committed=now)
        self.emit(ev.TurnStarted(turn_id=timer.turn_id, source="text"))
        self.turns += 1
        self.emit(ev.TurnEnded(turn_id=timer.turn_id, source="text", text=text, end_of_utterance_delay_ms=0.0))
        self.add_item({"role": "user", "content": text})
        self._spawn(self.transport.publish_transcript(text, speaker="user", final=True), "transcript")
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
    @property
    def playout(self) -> Playout | None:
        return self._playout

    def _write_frame(self, frame: np.ndarray) -> None:
        self.transport.write_audio(frame, RATE)

    def _on_out_frame(self, job: PlayoutJob, frame: np.ndarray, now: float) -> None:
        self.replies.on_out_frame(job, now)
        self.audio_state.frames_sent += 1
        listeners = self._listeners.get("audio_out_frame")
        if listeners:
            for cb in listeners:
                cb(frame)
        x = frame.astype(np.float32)
        self._out_sq += float(np.dot(x, x))
        self._out_samples += frame.size
        self._out_frames += 1
        if self._out_samples >= RATE * self.options.audio_event_interval_s:
            self._flush_out_stats(job.speech_id)

    def _flush_out_stats(self, speech_id: str) -> None:
        if not self._out_frames:
            return
        rms = (self._out_sq / max(1, self._out_samples)) ** 0.5 / 32768.0
        self.emit(ev.AudioStreamed(frames=self._out_frames, duration_ms=round(self._out_samples / RATE * 1000, 1),
                                   level_dbfs=round(_db(rms), 1), speech_id=speech_id))
        self._out_frames = 0
        self._out_sq = 0.0
        self._out_samples = 0

    # -- transport hooks ------------------------------------------------------------------------------------------
    def participant_joined(self, info: ev.ParticipantInfo) -> None:
        self.participants[info.identity] = info
        self.emit(ev.ParticipantJoined(participant=info))

    def participant_updated(self, info: ev.ParticipantInfo) -> None:
        self.participants[info.identity] = info

    def participant_left(self, identity: str, reason: str = "") -> None:
        info = self.participants.pop(identity, None) or ev.ParticipantInfo(identity=identity)
        self.emit(ev.ParticipantLeft(participant=info.model_copy(update={"connection_state": "disconnected"}),
                                     reason=reason))

    def room_updated(self, name: str, sid: str) -> None:
        if self.room != (name, sid):
            self.room = (name, sid)
            self.emit(ev.RoomIdUpdated(room_name=name, room_sid=sid))

    def operator_action(self, action: str, *, text: str = "", by: str = "") -> SpeechHandle | None:
        """The dashboard/API entry point: logs an operator_action event, then acts."""
        self.emit(ev.OperatorAction(action=action, text=text, by=by))  # type: ignore[arg-type]
        if action == "say":
            return self.say(text)
        if action == "interrupt":
            self.interrupt(reason="operator")
        elif action == "end":
            self.end("operator")
        elif action == "message":
            return self.push_text(text, source="operator")
        elif action == "pause":
            self.pause()
        elif action == "resume":
            self.resume()
        return None


def _db(rms: float) -> float:
    return 20 * math.log10(rms) if rms > 1e-6 else -120.0
