"""AgentSession: one live conversation. Wires the stages together and owns the state.

audio in → AudioInput (16 kHz mono) → VAD → UtteranceBuffer → STT → Endpointing →
user turn → ReplyGenerator (LLM + tools → sentences → TTS) → Playout → transport.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import events as ev
from .apm import AudioProcessor
from .audio import AudioInput, MalformedAudio, level_dbfs
from .clock import Ticker
from .generation import ReplyGenerator
from .interfaces import EventSink, ToolExecutor, Transport
from .playout import Playout, PlayoutJob
from .providers.base import LLM, STT, TTS, ProviderError
from .speech import SpeechHandle, SpeechSource, TurnTimer, new_id
from .turns import Endpointer, TurnOptions
from .vad import VAD, UtteranceBuffer, VADOptions

log = logging.getLogger(__name__)

Listener = Callable[[Any], None]


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


@dataclass
class AudioState:
    """The AudioState entity: kept current, readable at any time."""

    sample_rate: int = 16000
    channels: int = 1
    frame_ms: int = 20
    vad_enabled: bool = True
    vad_sensitivity: float = 0.5
    speaking: bool = False  # the user, per VAD
    agent_speaking: bool = False
    muted: bool = False
    buffer_size: int = 0  # samples of agent audio queued for playout (at the output rate)
    current_latency_ms: float | None = None  # last turn's end-to-end latency
    stream_active: bool = False
    last_audio_time: float | None = None  # wall clock (time.time())
    frames_received: int = 0
    frames_dropped: int = 0
    frames_sent: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class AgentSession:
    def __init__(self, *, options: SessionOptions, llm: LLM, transport: Transport, stt: STT | None = None,
                 tts: TTS | None = None, tools: ToolExecutor | None = None, sink: EventSink | None = None,
                 user_data: dict[str, Any] | None = None, ticker: Ticker | None = None) -> None:
        self.options = options
        self.id = options.session_id or new_id("session")
        self.llm, self.stt, self.tts, self.tools = llm, stt, tts, tools
        self.transport = transport
        self._sink = sink
        self.user_data: dict[str, Any] = user_data if user_data is not None else {}
        self.history: list[dict[str, Any]] = []
        self.participants: dict[str, ev.ParticipantInfo] = {}
        self.status: ev.SessionStatus = "initializing"
        self.agent_state: ev.AgentState = "initializing"
        self.user_state: ev.UserState = "listening"
        self.text_only = stt is None or tts is None
        self.room: tuple[str, str] | None = None
        self.turns = 0
        self._listeners: dict[str, list[Listener]] = {}
        self._ticker = ticker
        self._tasks: set[asyncio.Task[Any]] = set()
        self._speech_queue: deque[SpeechHandle] = deque()
        self.current_speech: SpeechHandle | None = None
        self._speech_wakeup: asyncio.Event | None = None
        self._closed: asyncio.Future[str] | None = None
        self._started_at = 0.0
        self._stopping = False
        vad = options.vad
        self.audio_state = AudioState(frame_ms=vad.frame_ms, vad_enabled=vad.enabled and stt is not None,
                                      vad_sensitivity=vad.sensitivity)
        self._audio_in = AudioInput(rate=vad.sample_rate, frame_ms=vad.frame_ms)
        self._vad = VAD(vad)
        self._utterance = UtteranceBuffer(rate=vad.sample_rate, padding_ms=vad.padding_ms,
                                          frame_samples=self._vad.frame_samples)
        self._apm: AudioProcessor | None = None
        self.endpointer = Endpointer(self, options.turn)
        self._playout: Playout | None = None
        self._latest_image: tuple[float, str] | None = None
        self._image_pending = False
        # aggregated audio counters
        self._in_frames = 0
        self._in_sq = 0.0
        self._in_samples = 0
        self._in_last_emit = 0.0
        self._out_frames = 0
        self._out_sq = 0.0
        self._out_samples = 0
        self._last_audio_error = 0.0

    # -- events ------------------------------------------------------------------------
    def on(self, event_type: str, callback: Listener) -> Callable[[], None]:
        """Subscribe in-process. Event types as in events.py, "*" for all, and the per-frame
        streams "audio_in_frame" / "audio_out_frame" (callback gets the int16 frame)."""
        self._listeners.setdefault(event_type, []).append(callback)
        return lambda: self._listeners.get(event_type, []).remove(callback)

    def emit(self, event: ev.Event) -> None:
        if self._sink is not None:
            try:
                self._sink.emit(event)
            except Exception:  # the sink must never take the pipeline down
                log.exception("event sink failed on %s", event.type)
        for key in (event.type, "*"):
            for cb in self._listeners.get(key, ()):
                try:
                    cb(event)
                except Exception:
                    log.exception("listener failed on %s", event.type)

    def _error(self, source: str, message: str, *, kind: str = "", recoverable: bool = True,
               attempt: int = 0) -> None:
        self.emit(ev.Error(source=source, message=message, error_kind=kind, recoverable=recoverable,
                           attempt=attempt))  # type: ignore[arg-type]

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
        self.emit(ev.ConversationItemAdded(role=item["role"], content=_text_of(item.get("content")),
                                           tool_calls=item.get("tool_calls") or [],
                                           tool_call_id=item.get("tool_call_id"), interrupted=interrupted))

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        self._speech_wakeup = asyncio.Event()
        self._started_at = time.perf_counter()
        if self._ticker is None:
            self._ticker = Ticker.shared(self.options.output_frame_ms / 1000)
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
        self.emit(ev.SessionStarted(session_id=self.id, agent_id=self.options.agent_id,
                                    transport=getattr(self.transport, "name", ""), text_only=self.text_only))
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
        self._spawn(self._speech_loop(), "speech-loop")

    async def stop(self, reason: str = "stopped") -> None:
        if self._stopping:
            if self._closed is not None:
                await asyncio.shield(self._closed)
            return
        self._stopping = True
        self.endpointer.cancel()
        for h in [self.current_speech, *self._speech_queue]:
            if h is not None and not h.done():
                self._cancel_speech(h, reason="session_end", emit=h is self.current_speech)
        self._speech_queue.clear()
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
        self._tasks_keep(t)
        return t

    async def wait_closed(self) -> str:
        """Returns the stop reason once the session has ended."""
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
        return (self.current_speech is None and not self._speech_queue and not self.endpointer.pending
                and not self._vad.speaking)

    async def wait_idle(self, poll_s: float = 0.02) -> None:
        """Returns when no user turn is pending and the agent has nothing left to say."""
        while not self.idle() and not self.closed:
            await asyncio.sleep(poll_s)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        t = asyncio.get_running_loop().create_task(coro, name=f"{name}-{self.id}")
        self._tasks_keep(t)
        return t

    def _tasks_keep(self, t: asyncio.Task[Any]) -> None:
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- audio in (synchronous, per frame) -----------------------------------------------
    def push_audio(self, data: Any, sample_rate: int, channels: int = 1) -> None:
        """One frame of user audio: bytes/memoryview/int16 ndarray, any rate, interleaved."""
        st = self.audio_state
        if self.status != "active" or self._stopping:
            return
        try:
            frames = self._audio_in.push(data, sample_rate, channels)
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
        for frame in frames:
            try:
                self._process_frame(frame)
            except Exception as exc:  # noqa: BLE001
                st.frames_dropped += 1
                self._audio_error(f"{type(exc).__name__}: {exc}")

    def _audio_error(self, message: str) -> None:
        now = time.perf_counter()
        if now - self._last_audio_error >= 1.0:  # at most one error event per second
            self._last_audio_error = now
            self._error("audio", f"dropped malformed audio frame: {message}", kind="malformed_frame")

    def _process_frame(self, frame: np.ndarray) -> None:
        if self._apm is not None:
            frame = frame.copy()
            self._apm.process_capture(frame, self._audio_in.rate)
        listeners = self._listeners.get("audio_in_frame")
        if listeners:
            for cb in listeners:
                cb(frame)
        x = frame.astype(np.float32)
        self._in_sq += float(np.dot(x, x))
        self._in_samples += frame.size
        self._in_frames += 1
        if self._in_samples >= self._audio_in.rate * self.options.audio_event_interval_s:
            self._flush_in_stats()
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

    def _flush_in_stats(self) -> None:
        n = max(1, self._in_samples)
        rms = (self._in_sq / n) ** 0.5 / 32768.0
        self.emit(ev.AudioReceived(frames=self._in_frames, duration_ms=round(n / self._audio_in.rate * 1000, 1),
                                   level_dbfs=round(_db(rms), 1), sample_rate=self._audio_in.last_rate,
                                   channels=self._audio_in.last_channels,
                                   dropped_frames=self.audio_state.frames_dropped))
        self._in_frames = 0
        self._in_sq = 0.0
        self._in_samples = 0

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
        text = text.strip()
        self.emit(ev.TextReceived(text=text, participant_identity=participant_identity,
                                  source=source if source in ("transport", "operator", "api", "local") else "local"))  # type: ignore[arg-type]
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
            h = self._speech_queue.popleft()
            self.current_speech = h
            gen = ReplyGenerator(self, h)
            h._task = asyncio.get_running_loop().create_task(gen.run(), name=f"{h.id}-{self.id}")
            self._tasks_keep(h._task)
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
    @property
    def playout(self) -> Playout | None:
        return self._playout

    def _write_frame(self, frame: np.ndarray) -> None:
        if self._apm is not None and self._playout is not None:
            self._apm.process_render(frame, self._playout.rate)
        self.transport.write_audio(frame, self._playout.rate if self._playout else 24000)

    def _on_out_frame(self, job: PlayoutJob, frame: np.ndarray, now: float) -> None:
        st = self.audio_state
        st.frames_sent += 1
        st.buffer_size = job.queued
        h = self.current_speech
        if h is not None and h.id == job.speech_id and h.timer.first_audio is None:
            h.timer.first_audio = time.perf_counter()
            self._set_agent_state("speaking")
        listeners = self._listeners.get("audio_out_frame")
        if listeners:
            for cb in listeners:
                cb(frame)
        x = frame.astype(np.float32)
        self._out_sq += float(np.dot(x, x))
        self._out_samples += frame.size
        self._out_frames += 1
        rate = self._playout.rate if self._playout else 24000
        if self._out_samples >= rate * self.options.audio_event_interval_s:
            self._flush_out_stats(job.speech_id)

    def _flush_out_stats(self, speech_id: str) -> None:
        if not self._out_frames:
            return
        rate = self._playout.rate if self._playout else 24000
        rms = (self._out_sq / max(1, self._out_samples)) ** 0.5 / 32768.0
        self.emit(ev.AudioStreamed(frames=self._out_frames, duration_ms=round(self._out_samples / rate * 1000, 1),
                                   level_dbfs=round(_db(rms), 1), speech_id=speech_id))
        self._out_frames = 0
        self._out_sq = 0.0
        self._out_samples = 0

    def _on_drained(self, job: PlayoutJob) -> None:
        self.audio_state.buffer_size = 0
        self._flush_out_stats(job.speech_id)
        h = self.current_speech
        if h is not None and h.id == job.speech_id:
            h.played_text = job.played_text()
        waiter = getattr(job, "drained", None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- transport hooks -----------------------------------------------------------------
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

    def provider_error(self, err: ProviderError) -> None:
        self._error(err.source, str(err), kind=err.kind, attempt=err.attempt)

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
    import math

    return 20 * math.log10(rms) if rms > 1e-6 else -120.0


def _text_of(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


__all__ = ["AgentSession", "SessionOptions", "AudioState", "SpeechHandle", "SpeechSource", "level_dbfs"]
