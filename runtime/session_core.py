"""SessionCore: what every live conversation shares, whatever makes the agent's voice.

AgentSession (STT → LLM → TTS) and RealtimeSession (a speech-to-speech model) present one
surface to transports, launchers and the dashboard: events and listeners, status and
agent/user state, start/stop/end/wait_closed, pause/resume, participant hooks, operator
actions and the audio in/out meters. That lives here once; the subclasses fill in the hooks
(`_open`, `_connect_model`, `_on_active`, `_teardown`, `_frames_in`, `_on_speech_frame`) and
the speech API (say / push_text / interrupt / idle).

The stages (turn detection, replies) never see the session: they get the few callables they
need through the Protocols in their own modules, and the session implements those with its
public methods here (`emit`, `spawn`, `report_error`, `record_user_turn`, `settled`…).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import events as ev
from .audio import AudioInput, LevelMeter, MalformedAudio
from .clock import Ticker
from .interfaces import AudioTap, EventSink, Transport
from .pause import PauseGate
from .playout import Playout, PlayoutJob
from .providers.base import ProviderError
from .speech import INTERRUPT_REASONS, SpeechHandle, TurnTimer, new_id

log = logging.getLogger(__name__)

Listener = Callable[[Any], None]


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


class SessionCore:
    # set by the subclass before anything runs: they depend on its options and pipeline
    audio_state: AudioState
    _audio_in: AudioInput  # user audio as the agent hears it (its rate paces the input meter)
    text_only: bool

    def __init__(self, *, options: Any, transport: Transport, sink: EventSink | None,
                 user_data: dict[str, Any] | None, ticker: Ticker | None) -> None:
        self.options = options
        self.id: str = options.session_id or new_id("session")
        self.transport = transport
        self._sink = sink
        self.user_data: dict[str, Any] = user_data if user_data is not None else {}
        self.history: list[dict[str, Any]] = []
        self.participants: dict[str, ev.ParticipantInfo] = {}
        self.status: ev.SessionStatus = "initializing"
        self.agent_state: ev.AgentState = "initializing"
        self.user_state: ev.UserState = "listening"
        self.room: tuple[str, str] | None = None
        self.turns = 0
        self.pause_gate = PauseGate()
        self._listeners: dict[str, list[Listener]] = {}
        self._ticker = ticker
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed: asyncio.Future[str] | None = None
        self._started_at = 0.0
        self._stopping = False
        self._paused_before_disconnect = False
        self._playout: Playout | None = None
        # set whenever something that kept the session busy ends: wait_idle re-checks idle()
        self._settled = asyncio.Event()
        # aggregated audio: one AudioReceived / AudioStreamed event per interval, not per frame
        self._in_meter = LevelMeter()
        self._out_meter = LevelMeter()
        self._last_audio_error = 0.0

    # -- events ------------------------------------------------------------------------------------
    def on(self, event_type: str, callback: Listener) -> Callable[[], None]:
        """Subscribe in-process. Event types as in events.py, "*" for all, and the per-frame
        streams "audio_in_frame" / "audio_out_frame" (callback gets the int16 frame).
        RealtimeSession adds "server_event" (every realtime server event, as the SDK's typed
        model) and "server_event:<type>" for one type."""
        self._listeners.setdefault(event_type, []).append(callback)
        return lambda: self._listeners.get(event_type, []).remove(callback)

    def add_audio_tap(self, tap: AudioTap) -> Callable[[], None]:
        """Send every user-input and agent-output frame to `tap` (e.g. a call recorder).

        A failing tap is logged and skipped: it never drops a frame of the call itself."""
        def guarded(write: Callable[[np.ndarray, int], None], rate: Callable[[], int]) -> Listener:
            def on_frame(frame: np.ndarray) -> None:
                try:
                    write(frame, rate())
                except Exception:  # noqa: BLE001 - recording must not break the call
                    log.debug("audio tap failed", exc_info=True)

            return on_frame

        off_in = self.on("audio_in_frame", guarded(tap.user_audio, lambda: self._audio_in.rate))
        off_out = self.on("audio_out_frame", guarded(tap.agent_audio, self._rate_out))

        def remove() -> None:
            off_in()
            off_out()

        return remove

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

    def _error(self, source: str, message: str, *, kind: str = "", recoverable: bool = True,
               attempt: int = 0) -> None:
        self.emit(ev.Error(source=source, message=message, error_kind=kind, recoverable=recoverable,
                           attempt=attempt))  # type: ignore[arg-type]

    def provider_error(self, err: ProviderError) -> None:
        self._error(err.source, str(err), kind=err.kind, attempt=err.attempt)

    def report_error(self, source: str, exc: BaseException) -> None:
        """A stage failed but the session goes on: a provider's own error, or a bug in `source`."""
        if isinstance(exc, ProviderError):
            self.provider_error(exc)
        else:
            self._error(source, f"{type(exc).__name__}: {exc}")

    def report_metrics(self, metrics: ev.TurnMetrics) -> None:
        if metrics.end_to_end_ms is not None:
            self.audio_state.current_latency_ms = metrics.end_to_end_ms
        self.emit(ev.MetricsCollected(metrics=metrics))

    def _set_status(self, new: ev.SessionStatus) -> None:
        if new != self.status:
            old, self.status = self.status, new
            self.emit(ev.StateChanged(old_state=old, new_state=new))

    def set_agent_state(self, new: ev.AgentState) -> None:
        if new != self.agent_state:
            old, self.agent_state = self.agent_state, new
            self.audio_state.agent_speaking = new == "speaking"
            self.emit(ev.AgentStateChanged(old_state=old, new_state=new))

    def set_user_state(self, new: ev.UserState) -> None:
        if new != self.user_state:
            old, self.user_state = self.user_state, new
            self.audio_state.speaking = new == "speaking"
            self.emit(ev.UserStateChanged(old_state=old, new_state=new))

    def add_item(self, item: dict[str, Any], *, interrupted: bool = False) -> None:
        self.history.append(item)
        self.emit(ev.ConversationItemAdded(role=item["role"], content=_text_of(item.get("content")),
                                           tool_calls=item.get("tool_calls") or [],
                                           tool_call_id=item.get("tool_call_id"), interrupted=interrupted))

    def publish_transcript(self, text: str, *, speaker: str) -> None:
        self.spawn(self.transport.publish_transcript(text, speaker=speaker, final=True), "transcript")

    def record_user_turn(self, text: str, timer: TurnTimer, *, source: str) -> None:
        """A user turn ended with `text` ("" when nothing was understood): counted, logged and,
        with text, added to the history and published as the user's transcript."""
        self.turns += 1
        self.emit(ev.TurnEnded(turn_id=timer.turn_id, source=source, text=text,  # type: ignore[arg-type]
                               end_of_utterance_delay_ms=round(((timer.committed or 0) - (timer.last_voice or 0)) * 1000, 3)))
        if text:
            self.add_item({"role": "user", "content": text})
            self.publish_transcript(text, speaker="user")

    def record_interruption(self, h: SpeechHandle, reason: str, *, emit: bool) -> None:
        """After `h.cancel(reason)`: what the user heard of it is what the history keeps."""
        if emit:
            self.emit(ev.Interrupted(speech_id=h.id, played_ms=round(h.played_ms, 1), played_text=h.played_text,
                                     reason=reason if reason in INTERRUPT_REASONS else "api"))  # type: ignore[arg-type]
            self.emit(ev.ResponseCancelled(speech_id=h.id, reason=reason))
        if h.add_to_history and h.played_text:
            self.add_item({"role": "assistant", "content": h.played_text}, interrupted=True)

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self._closed = asyncio.get_running_loop().create_future()
        self._started_at = time.perf_counter()
        if self._ticker is None:
            self._ticker = Ticker.shared(self.options.output_frame_ms / 1000)
        self._open()
        self.emit(ev.SessionStarted(session_id=self.id, agent_id=self.options.agent_id,
                                    transport=getattr(self.transport, "name", ""), text_only=self.text_only))
        await self._connect_model()
        try:
            await self.transport.connect(self)
        except Exception as exc:  # noqa: BLE001
            self._error("transport", f"connect failed: {exc}", recoverable=False)
            self._set_status("error")
            await self.stop("transport_error")
            raise
        self._set_status("connected")
        self._set_status("active")
        self.set_agent_state("listening")
        self.audio_state.stream_active = True
        self._on_active()

    def _open(self) -> None:
        """Before SessionStarted: build the output side (playout, audio processing)."""

    async def _connect_model(self) -> None:
        """Before the transport: a model that needs a connection opens it (stop + raise on failure)."""

    def _on_active(self) -> None:
        """The transport is up and the session active: start whatever serves it."""

    async def _teardown(self) -> None:
        """First step of stop: cancel turns and speech, close the model, before tasks are cancelled."""

    async def stop(self, reason: str = "stopped") -> None:
        if self._stopping:
            if self._closed is not None:
                await asyncio.shield(self._closed)
            return
        self._stopping = True
        await self._teardown()
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
        self._settled.set()

    def end(self, reason: str = "ended") -> asyncio.Task[None]:
        """Ask the session to stop (from a callback, a tool or an operator)."""
        t = asyncio.get_running_loop().create_task(self.stop(reason), name=f"stop-{self.id}")
        self._keep(t)
        return t

    async def wait_closed(self) -> str:
        """Returns the stop reason once the session has ended."""
        assert self._closed is not None, "session not started"
        return await asyncio.shield(self._closed)

    @property
    def closed(self) -> bool:
        return self._closed is not None and self._closed.done()

    def pause(self) -> bool:
        """Stop listening and speaking (see pause.py); True if the session was active."""
        if self.status != "active" or self._stopping:
            return False
        self.pause_gate.close()
        if self._playout is not None:
            self._playout.hold()
        self._on_pause()
        self.audio_state.muted = True
        self._set_status("paused")
        return True

    def resume(self) -> bool:
        """Listen and speak again; held output plays on. True if the session was paused."""
        if self.status != "paused" or self._stopping:
            return False
        self.audio_state.muted = False
        self._set_status("active")
        self.pause_gate.open()
        if self._playout is not None:
            self._playout.release()
        return True

    def _on_pause(self) -> None:
        """The session is being paused: drop whatever user input is half taken."""

    def transport_disconnected(self, reason: str = "") -> None:
        """The transport lost its connection and is trying to get it back (a reconnect)."""
        if self._stopping or self.status not in ("connected", "active", "paused"):
            return
        self._paused_before_disconnect = self.status == "paused"
        self.audio_state.stream_active = False
        self._set_status("disconnected")

    def transport_reconnected(self) -> None:
        """The transport is back: disconnected → connected → active (→ paused if it was)."""
        if self._stopping or self.status != "disconnected":
            return
        self._set_status("connected")
        self._set_status("active")
        self.audio_state.stream_active = True
        if self._paused_before_disconnect:
            self._set_status("paused")

    @property
    def stopping(self) -> bool:
        """stop() has begun: a "disconnected" status from now on is the session's end."""
        return self._stopping

    @property
    def current_speech(self) -> SpeechHandle | None:
        """The speech playing (or being generated) now."""
        raise NotImplementedError

    def idle(self) -> bool:
        raise NotImplementedError

    def settled(self) -> None:
        """Something that kept the session busy (a turn, a speech) has ended."""
        self._settled.set()

    async def wait_idle(self) -> None:
        """Returns when no user turn is pending and the agent has nothing left to say."""
        while not self.idle() and not self.closed:
            self._settled.clear()
            await self._settled.wait()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A task the session keeps until it is done, and cancels if it is still running at stop."""
        t = asyncio.get_running_loop().create_task(coro, name=f"{name}-{self.id}")
        self._keep(t)
        return t

    def _keep(self, t: asyncio.Task[Any]) -> None:
        # the loop holds tasks weakly: keep a reference until done, and stop() cancels what is left
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- audio in (synchronous, per frame) -----------------------------------------------------------
    def push_audio(self, data: Any, sample_rate: int, channels: int = 1) -> None:
        """One frame of user audio: bytes/memoryview/int16 ndarray, any rate, interleaved."""
        st = self.audio_state
        if self.status != "active" or self._stopping:
            return
        try:
            frames = self._decode_audio(data, sample_rate, channels)
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
        self._frames_in(frames)

    def _decode_audio(self, data: Any, sample_rate: int, channels: int) -> list[np.ndarray]:
        return self._audio_in.push(data, sample_rate, channels)

    def _frames_in(self, frames: Iterable[np.ndarray]) -> None:
        """The decoded frames, at `_audio_in.rate`: on to the model / VAD."""
        raise NotImplementedError

    def _audio_error(self, message: str) -> None:
        now = time.perf_counter()
        if now - self._last_audio_error >= 1.0:  # at most one error event per second
            self._last_audio_error = now
            self._error("audio", f"dropped malformed audio frame: {message}", kind="malformed_frame")

    def _tap(self, stream: str, frame: np.ndarray) -> None:
        # unguarded, unlike emit(): the caller decides what a failing frame listener means
        # (AgentSession counts the frame as dropped)
        for cb in self._listeners.get(stream, ()):
            cb(frame)

    def _meter_in(self, frame: np.ndarray) -> None:
        """Per input frame: the "audio_in_frame" listeners, then the AudioReceived meter."""
        self._tap("audio_in_frame", frame)
        m = self._in_meter
        m.add(frame)
        if m.samples >= self._audio_in.rate * self.options.audio_event_interval_s:
            self._flush_in_stats()

    def _flush_in_stats(self) -> None:
        m = self._in_meter
        n = max(1, m.samples)
        self.emit(ev.AudioReceived(frames=m.frames, duration_ms=round(n / self._audio_in.rate * 1000, 1),
                                   level_dbfs=round(m.level(), 1), sample_rate=self._audio_in.last_rate,
                                   channels=self._audio_in.last_channels,
                                   dropped_frames=self.audio_state.frames_dropped))
        m.reset()

    # -- text in / agent speech (the subclass's pipeline) ----------------------------------------------
    def _text_in(self, text: str, source: str, participant_identity: str) -> str:
        """Logs the TextReceived event; the stripped text, or "" while paused (not listening)."""
        text = text.strip()
        self.emit(ev.TextReceived(text=text, participant_identity=participant_identity,
                                  source=source if source in ("transport", "operator", "api", "local") else "local"))  # type: ignore[arg-type]
        return "" if self.pause_gate.paused else text

    def push_text(self, text: str, *, source: str = "local", participant_identity: str = "") -> SpeechHandle | None:
        raise NotImplementedError

    def say(self, text: str, *, allow_interruptions: bool = True, add_to_history: bool = True) -> SpeechHandle:
        raise NotImplementedError

    def interrupt(self, reason: str = "api") -> bool:
        raise NotImplementedError

    # -- audio out -----------------------------------------------------------------------------------
    @property
    def playout(self) -> Playout | None:
        return self._playout

    def _rate_out(self) -> int:
        return self._playout.rate if self._playout else 24000

    def _on_out_frame(self, job: PlayoutJob, frame: np.ndarray, now: float) -> None:
        """The playout's per-frame callback: speech timing, "audio_out_frame" listeners, meter."""
        self._on_speech_frame(job, now)
        self._tap("audio_out_frame", frame)
        m = self._out_meter
        m.add(frame)
        if m.samples >= self._rate_out() * self.options.audio_event_interval_s:
            self._flush_out_stats(job.speech_id)

    def _on_speech_frame(self, job: PlayoutJob, now: float) -> None:
        """A frame of `job` went out at `now` (scheduled time): count it, note the first audio."""
        raise NotImplementedError

    def _flush_out_stats(self, speech_id: str) -> None:
        m = self._out_meter
        if not m.frames:
            return
        self.emit(ev.AudioStreamed(frames=m.frames, duration_ms=round(m.samples / self._rate_out() * 1000, 1),
                                   level_dbfs=round(m.level(), 1), speech_id=speech_id))
        m.reset()

    # -- transport hooks -----------------------------------------------------------------------------
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


def _text_of(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


__all__ = ["SessionCore", "AudioState", "Listener"]
