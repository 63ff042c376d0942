"""A session's live state, folded from its events and written to its row at most once a second.

The event sink feeds every event it stores to `LiveState.feed` on its writer thread (never on
the audio path) and asks `LiveState.due` whether the row needs writing; the update then goes
in the same transaction as the batch of events (`sessions.services.session_events_store`).

What it keeps (the `AgentSession` columns):
- `agent_state`, `user_state`: from `agent_state_changed` / `user_state_changed`;
- `audio_state`: the seed's AudioState (format, vad_enabled, vad_sensitivity, is_speaking,
  is_muted, buffer_size, latency_ms, stream_active, last_audio_at), from a snapshot of the
  runtime's audio meter when the sink was given one, else from the events alone;
- `metrics`: turns, latency percentiles per stage, interruptions, tool calls and errors,
  errors, tokens and characters;
- `conversation_state`: turn count, items, the last user and agent text.
"""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from sessions.models import validate_audio_state

WRITE_INTERVAL_S = 1.0
MAX_SAMPLES = 5000  # per stage: percentiles describe the last 5000 turns of a long call
MAX_TEXT = 500  # of the last user/agent text kept in conversation_state
SAMPLE_RATES = (8000, 16000, 24000, 32000, 44100, 48000)
# TurnMetrics field → the stage's name in the summary
STAGES = {
    "end_of_utterance_delay_ms": "end_of_utterance",
    "stt_duration_ms": "stt",
    "llm_ttft_ms": "llm_ttft",
    "llm_duration_ms": "llm",
    "tts_ttfb_ms": "tts_ttfb",
    "end_to_end_ms": "end_to_end",
}
AudioSnapshot = Callable[[], Mapping[str, Any]]


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(values: list[float]) -> dict[str, float | int]:
    ordered = sorted(values)
    return {"count": len(ordered), "p50": round(percentile(ordered, 50), 1), "p95": round(percentile(ordered, 95), 1),
            "max": round(ordered[-1], 1)}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _iso(at: datetime | float | None) -> str | None:
    if at is None:
        return None
    if not isinstance(at, datetime):
        at = datetime.fromtimestamp(at, tz=timezone.utc)
    return at.isoformat().replace("+00:00", "Z")


def audio_state_from_runtime(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The runtime's AudioState (runtime.session_core) in the seed's field names."""
    rate, channels = snapshot.get("sample_rate"), snapshot.get("channels")
    frame_ms = snapshot.get("frame_ms") or 20
    state: dict[str, Any] = {
        "vad_enabled": bool(snapshot.get("vad_enabled")),
        "is_speaking": bool(snapshot.get("speaking")),
        "agent_speaking": bool(snapshot.get("agent_speaking")),
        "is_muted": bool(snapshot.get("muted")),
        "stream_active": bool(snapshot.get("stream_active")),
        "last_audio_at": _iso(snapshot.get("last_audio_time")),
        "frames_received": int(snapshot.get("frames_received") or 0),
        "frames_dropped": int(snapshot.get("frames_dropped") or 0),
        "frames_sent": int(snapshot.get("frames_sent") or 0),
    }
    if rate in SAMPLE_RATES and channels in (1, 2):
        state["format"] = {"encoding": "pcm16", "sample_rate": rate, "channels": channels}
        # the seed's buffer size: samples in one input frame
        state["buffer_size"] = int(rate * frame_ms // 1000)
    sensitivity = _number(snapshot.get("vad_sensitivity"))
    if sensitivity is not None:
        state["vad_sensitivity"] = sensitivity
    latency = _number(snapshot.get("current_latency_ms"))
    if latency is not None and latency >= 0:
        state["latency_ms"] = round(latency)
    return state


class LiveState:
    """Folds one session's events; only the sink's writer thread touches it."""

    def __init__(self, *, audio: AudioSnapshot | None = None, interval_s: float = WRITE_INTERVAL_S) -> None:
        self.audio = audio
        self.interval_s = interval_s
        self.agent_state: str | None = None
        self.user_state: str | None = None
        self.status: str = ""
        self.last_audio_at: datetime | None = None
        self.audio_format: dict[str, Any] | None = None
        self.last_latency_ms: float | None = None
        self.counts = {"turns": 0, "responses": 0, "interruptions": 0, "tool_calls": 0, "tool_errors": 0, "errors": 0,
                       "llm_calls": 0}
        self.tokens = {"prompt": 0, "completion": 0, "total": 0}
        self.characters = {"user": 0, "agent": 0, "tts": 0}
        self.stt_audio_ms = 0.0
        self.samples: dict[str, deque[float]] = {name: deque(maxlen=MAX_SAMPLES) for name in STAGES.values()}
        self.items = 0
        self.last_user: tuple[str, str] | None = None  # (text, at)
        self.last_agent: tuple[str, str] | None = None
        self._changed = False
        self._written: dict[str, Any] = {}
        self._written_at = -math.inf

    # -- folding -------------------------------------------------------------------------
    def feed(self, type_: str, at: datetime, data: Mapping[str, Any]) -> None:
        handler = _HANDLERS.get(type_)
        if handler is not None:
            handler(self, at, data)
            self._changed = True

    def _agent_state(self, at: datetime, data: Mapping[str, Any]) -> None:
        self.agent_state = str(data.get("new_state") or self.agent_state)

    def _user_state(self, at: datetime, data: Mapping[str, Any]) -> None:
        self.user_state = str(data.get("new_state") or self.user_state)

    def _status(self, at: datetime, data: Mapping[str, Any]) -> None:
        self.status = str(data.get("new_state") or self.status)

    def _audio_in(self, at: datetime, data: Mapping[str, Any]) -> None:
        self.last_audio_at = at
        rate, channels = data.get("sample_rate"), data.get("channels")
        if rate in SAMPLE_RATES and channels in (1, 2):
            self.audio_format = {"encoding": "pcm16", "sample_rate": rate, "channels": channels}

    def _audio_out(self, at: datetime, data: Mapping[str, Any]) -> None:
        self.last_audio_at = at

    def _turn(self, at: datetime, data: Mapping[str, Any]) -> None:
        self.counts["turns"] += 1
        self.characters["user"] += len(str(data.get("text") or ""))

    def _response(self, at: datetime, data: Mapping[str, Any]) -> None:
        self.counts["responses"] += 1
        self.characters["agent"] += len(str(data.get("text") or ""))

    def _metrics(self, at: datetime, data: Mapping[str, Any]) -> None:
        m = data.get("metrics") or {}
        for field, stage in STAGES.items():
            value = _number(m.get(field))
            if value is not None and value >= 0:
                self.samples[stage].append(value)
        latency = _number(m.get("end_to_end_ms"))
        if latency is not None:
            self.last_latency_ms = latency
        self.counts["llm_calls"] += int(m.get("llm_calls") or 0)
        self.tokens["prompt"] += int(m.get("prompt_tokens") or 0)
        self.tokens["completion"] += int(m.get("completion_tokens") or 0)
        self.tokens["total"] += int(m.get("total_tokens") or 0)
        self.characters["tts"] += int(m.get("tts_characters") or 0)
        self.stt_audio_ms += _number(m.get("stt_audio_ms")) or 0.0

    def _item(self, at: datetime, data: Mapping[str, Any]) -> None:
        self.items += 1
        text = data.get("content")
        if not isinstance(text, str) or not text.strip():
            return
        if data.get("role") == "user":
            self.last_user = (text[:MAX_TEXT], _iso(at) or "")
        elif data.get("role") == "assistant":
            self.last_agent = (text[:MAX_TEXT], _iso(at) or "")

    # -- what the row gets ----------------------------------------------------------------
    def audio_state(self) -> dict[str, Any]:
        if self.audio is not None:
            state = audio_state_from_runtime(self.audio())
        else:
            state = {"is_speaking": self.user_state == "speaking", "is_muted": self.status == "paused",
                     "stream_active": self.status in ("active", "paused")}
            if self.audio_format is not None:
                state["format"] = self.audio_format
            if self.last_latency_ms is not None and self.last_latency_ms >= 0:
                state["latency_ms"] = round(self.last_latency_ms)
            state["last_audio_at"] = _iso(self.last_audio_at)
        if self.last_audio_at is not None and not state.get("last_audio_at"):
            state["last_audio_at"] = _iso(self.last_audio_at)
        if validate_audio_state(state):  # never write what the model would refuse
            state.pop("format", None)
            state.pop("buffer_size", None)
        return state

    def metrics(self) -> dict[str, Any]:
        return {
            **self.counts,
            "tokens": dict(self.tokens),
            "characters": dict(self.characters),
            "stt_audio_ms": round(self.stt_audio_ms, 1),
            "latency_ms": {stage: latency_summary(list(values)) for stage, values in self.samples.items() if values},
        }

    def conversation(self) -> dict[str, Any]:
        state: dict[str, Any] = {"turn_count": self.counts["turns"], "items": self.items}
        if self.last_user is not None:
            state["last_user_text"], state["last_user_at"] = self.last_user
        if self.last_agent is not None:
            state["last_agent_text"], state["last_agent_at"] = self.last_agent
        return state

    def updates(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"audio_state": self.audio_state(), "metrics": self.metrics(),
                                  "conversation_state": self.conversation()}
        if self.agent_state:
            fields["agent_state"] = self.agent_state
        if self.user_state:
            fields["user_state"] = self.user_state
        return fields

    def too_soon(self, now: float) -> bool:
        """Less than the write interval since the last write: `due` answers None without `force`."""
        return now - self._written_at < self.interval_s

    def due(self, *, force: bool = False, now: float | None = None) -> dict[str, Any] | None:
        """The row's new fields if they changed and a second has passed (or `force`), else None."""
        now = time.monotonic() if now is None else now
        if not force and self.too_soon(now):
            return None
        if not self._changed and self.audio is None and self._written:
            return None
        fields = self.updates()
        changed = {key: value for key, value in fields.items() if self._written.get(key) != value}
        return changed or None

    def written(self, fields: Mapping[str, Any], *, now: float | None = None) -> None:
        self._written.update(fields)
        self._written_at = time.monotonic() if now is None else now
        self._changed = False


Handler = Callable[[LiveState, datetime, Mapping[str, Any]], None]


def _counter(key: str) -> Handler:
    def bump(state: LiveState, at: datetime, data: Mapping[str, Any]) -> None:
        state.counts[key] += 1

    return bump


_HANDLERS: dict[str, Handler] = {
    "agent_state_changed": LiveState._agent_state,
    "user_state_changed": LiveState._user_state,
    "state_changed": LiveState._status,
    "audio_received": LiveState._audio_in,
    "audio_streamed": LiveState._audio_out,
    "turn_ended": LiveState._turn,
    "response_generated": LiveState._response,
    "interrupted": _counter("interruptions"),
    "tool_called": _counter("tool_calls"),
    "tool_error": _counter("tool_errors"),
    "error": _counter("errors"),
    "metrics_collected": LiveState._metrics,
    "conversation_item_added": LiveState._item,
}
