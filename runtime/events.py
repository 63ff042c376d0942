"""Typed session events: one pydantic model per event type, discriminated by `type`.

The event sink receives these models. The persisted envelope is
`{"type": e.type, "at": e.at, "data": e.model_dump(mode="json", exclude={"type", "at"})}`.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

AgentState = Literal["initializing", "listening", "thinking", "speaking", "idle"]
UserState = Literal["listening", "speaking", "away"]
SessionStatus = Literal["initializing", "connected", "active", "paused", "disconnected", "error"]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str
    at: datetime = Field(default_factory=_now)

    def envelope_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"type", "at"})


class SessionStarted(Event):
    type: Literal["session_started"] = "session_started"
    session_id: str = ""
    agent_id: str = ""
    transport: str = ""
    text_only: bool = False


class SessionStopped(Event):
    type: Literal["session_stopped"] = "session_stopped"
    reason: str = ""
    turns: int = 0
    duration_s: float = 0.0


class StateChanged(Event):
    """The session's lifecycle status (DESIGN.md's AgentSession.status machine)."""

    type: Literal["state_changed"] = "state_changed"
    old_state: SessionStatus
    new_state: SessionStatus


class AgentStateChanged(Event):
    type: Literal["agent_state_changed"] = "agent_state_changed"
    old_state: AgentState
    new_state: AgentState


class UserStateChanged(Event):
    type: Literal["user_state_changed"] = "user_state_changed"
    old_state: UserState
    new_state: UserState


class ParticipantInfo(BaseModel):
    """The Participant entity: kept current from the transport."""

    identity: str
    sid: str = ""
    name: str = ""
    kind: Literal["standard", "sip", "agent", "ingress", "egress", "connector", "bridge"] = "standard"
    permissions: dict[str, bool] = Field(default_factory=dict)
    tracks: list[dict[str, Any]] = Field(default_factory=list)
    connection_state: Literal["connecting", "connected", "reconnecting", "disconnected"] = "connected"
    attributes: dict[str, str] = Field(default_factory=dict)
    metadata: str = ""


class ParticipantJoined(Event):
    type: Literal["participant_joined"] = "participant_joined"
    participant: ParticipantInfo


class ParticipantLeft(Event):
    type: Literal["participant_left"] = "participant_left"
    participant: ParticipantInfo
    reason: str = ""


class Reconnecting(Event):
    """The transport lost its connection and is trying to get it back (audio paused meanwhile)."""

    type: Literal["reconnecting"] = "reconnecting"
    transport: str = ""
    attempt_started_at: datetime | None = None


class Reconnected(Event):
    type: Literal["reconnected"] = "reconnected"
    transport: str = ""
    downtime_ms: float = 0.0


class RoomIdUpdated(Event):
    type: Literal["room_id_updated"] = "room_id_updated"
    room_name: str
    room_sid: str


class AudioReceived(Event):
    """Aggregated: about one per second of incoming audio."""

    type: Literal["audio_received"] = "audio_received"
    frames: int
    duration_ms: float
    level_dbfs: float
    sample_rate: int
    channels: int
    dropped_frames: int = 0


class AudioStreamed(Event):
    """Aggregated: about one per second of agent audio sent to the transport."""

    type: Literal["audio_streamed"] = "audio_streamed"
    frames: int
    duration_ms: float
    level_dbfs: float
    speech_id: str = ""


class TtsAudio(Event):
    """One per synthesized text segment, when its audio is complete."""

    type: Literal["tts_audio"] = "tts_audio"
    speech_id: str
    text: str
    duration_ms: float
    ttfb_ms: float
    bytes: int


class VadSpeechStart(Event):
    type: Literal["vad_speech_start"] = "vad_speech_start"
    probability: float = 1.0


class VadSpeechEnd(Event):
    type: Literal["vad_speech_end"] = "vad_speech_end"
    speech_duration_ms: float
    silence_duration_ms: float


class SttResult(Event):
    type: Literal["stt_result"] = "stt_result"
    text: str
    is_final: bool = True
    language: str | None = None
    audio_duration_ms: float = 0.0
    duration_ms: float = 0.0


class TextReceived(Event):
    type: Literal["text_received"] = "text_received"
    text: str
    participant_identity: str = ""
    source: Literal["transport", "operator", "api", "local"] = "local"


class TurnStarted(Event):
    type: Literal["turn_started"] = "turn_started"
    turn_id: str
    source: Literal["audio", "text"]


class TurnEnded(Event):
    type: Literal["turn_ended"] = "turn_ended"
    turn_id: str
    source: Literal["audio", "text"]
    text: str
    end_of_utterance_delay_ms: float = 0.0


class ResponseGenerated(Event):
    type: Literal["response_generated"] = "response_generated"
    speech_id: str
    text: str
    interrupted: bool = False
    tool_steps: int = 0
    model: str = ""  # the LLM that wrote it
    scripted: bool = False  # written by rules (the `scripted` LLM), not by a language model


class ConversationItemAdded(Event):
    type: Literal["conversation_item_added"] = "conversation_item_added"
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    tool_call_id: str | None = None
    interrupted: bool = False


class SpeechCreated(Event):
    type: Literal["speech_created"] = "speech_created"
    speech_id: str
    source: Literal["say", "generate_reply", "tool_response"]
    user_initiated: bool = False
    allow_interruptions: bool = True


class ToolCalled(Event):
    type: Literal["tool_called"] = "tool_called"
    call_id: str
    name: str
    arguments: str
    speech_id: str = ""


class ToolCompleted(Event):
    type: Literal["tool_completed"] = "tool_completed"
    call_id: str
    name: str
    output: str
    duration_ms: float


class ToolError(Event):
    type: Literal["tool_error"] = "tool_error"
    call_id: str
    name: str
    error: str
    error_kind: str | None = None
    duration_ms: float = 0.0


class Interrupted(Event):
    type: Literal["interrupted"] = "interrupted"
    speech_id: str
    played_ms: float
    played_text: str
    reason: Literal["user_speech", "operator", "api", "session_end"] = "user_speech"


class ResponseCancelled(Event):
    type: Literal["response_cancelled"] = "response_cancelled"
    speech_id: str
    reason: str


class TurnMetrics(BaseModel):
    """One latency breakdown per turn (milliseconds; None where a stage did not run)."""

    turn_id: str
    speech_id: str = ""
    end_of_utterance_delay_ms: float | None = None
    stt_duration_ms: float | None = None
    llm_ttft_ms: float | None = None
    llm_duration_ms: float | None = None
    tts_ttfb_ms: float | None = None
    end_to_end_ms: float | None = None
    framework_overhead_ms: float | None = None
    llm_calls: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    tts_characters: int = 0
    stt_audio_ms: float = 0.0


class MetricsCollected(Event):
    type: Literal["metrics_collected"] = "metrics_collected"
    metrics: TurnMetrics


class Error(Event):
    type: Literal["error"] = "error"
    source: Literal["llm", "stt", "tts", "vad", "transport", "tool", "audio", "session"]
    message: str
    recoverable: bool = True
    error_kind: str = ""
    attempt: int = 0


class RealtimeEvent(Event):
    type: Literal["realtime_event"] = "realtime_event"
    name: str
    payload: dict[str, Any] = Field(default_factory=dict)


class OperatorAction(Event):
    type: Literal["operator_action"] = "operator_action"
    action: Literal["say", "interrupt", "end", "message", "pause", "resume"]
    text: str = ""
    by: str = ""


class TranscriptLine(BaseModel):
    role: Literal["user", "assistant"]
    text: str
    at: datetime | None = None
    interrupted: bool = False


class CallEnded(Event):
    """The end-of-call report: emitted by the control plane once the session row is closed."""

    type: Literal["call_ended"] = "call_ended"
    session_id: str
    agent_id: str = ""
    status: str = ""
    reason: str = ""
    error: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float = 0.0
    transcript: list[TranscriptLine] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    recording_url: str | None = None


class CallerReport(Event):
    """A simulated caller's figures (job metadata `simulated_caller`, load tests only), once,
    when it stops: reply latency (end of its speech → first audible agent frame) per reply,
    and its input / the agent's output frame lag as p50/p99/max and a histogram whose bucket
    upper edges are `lag_edges_ms` (-1: beyond the last edge)."""

    type: Literal["caller_report"] = "caller_report"
    duration_s: float = 0.0
    utterances: int = 0
    replies: int = 0
    missing_replies: int = 0
    reply_ms: list[float] = Field(default_factory=list)
    in_lag_p50_ms: float | None = None
    in_lag_p99_ms: float | None = None
    in_lag_max_ms: float = 0.0
    in_lag_counts: list[int] = Field(default_factory=list)
    out_lag_p50_ms: float | None = None
    out_lag_p99_ms: float | None = None
    out_lag_max_ms: float = 0.0
    out_lag_counts: list[int] = Field(default_factory=list)
    lag_edges_ms: list[float] = Field(default_factory=list)


AnyEvent = Annotated[
    Union[
        SessionStarted, SessionStopped, StateChanged, AgentStateChanged, UserStateChanged,
        ParticipantJoined, ParticipantLeft, Reconnecting, Reconnected, RoomIdUpdated, AudioReceived, AudioStreamed,
        TtsAudio, VadSpeechStart, VadSpeechEnd, SttResult, TextReceived, TurnStarted,
        TurnEnded, ResponseGenerated, ConversationItemAdded, SpeechCreated, ToolCalled,
        ToolCompleted, ToolError, Interrupted, ResponseCancelled, MetricsCollected, Error,
        RealtimeEvent, OperatorAction, CallEnded, CallerReport,
    ],
    Field(discriminator="type"),
]

EVENT_TYPES: dict[str, type[Event]] = {
    cls.model_fields["type"].default: cls  # type: ignore[misc]
    for cls in AnyEvent.__origin__.__args__  # type: ignore[attr-defined]
}

_adapter: TypeAdapter[Any] = TypeAdapter(AnyEvent)


def parse_event(type_: str, at: datetime | str, data: dict[str, Any]) -> Event:
    """Rebuild a typed event from a stored envelope (`type`, `at`, `data`)."""
    return _adapter.validate_python({"type": type_, "at": at, **data})  # type: ignore[no-any-return]
