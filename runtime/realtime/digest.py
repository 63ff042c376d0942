"""Which realtime server events become `realtime_event`s, with what payload, how often.

Operator-relevant events are emitted one by one with a small payload; high-rate ones
(audio and transcript deltas) are aggregated into one event per type per interval, like
the audio events. A per-second cap bounds the rest; what it holds back is counted and
reported on the next event that goes out.
"""
from __future__ import annotations

from typing import Any

OPERATOR_EVENTS = frozenset({
    "session.created", "session.updated", "error", "rate_limits.updated",
    "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
    "input_audio_buffer.cleared", "input_audio_buffer.timeout_triggered",
    "conversation.item.input_audio_transcription.completed", "conversation.item.input_audio_transcription.failed",
    "conversation.item.truncated", "conversation.item.deleted",
    "response.created", "response.done", "response.function_call_arguments.done",
})
HIGH_RATE = frozenset({
    "response.output_audio.delta", "response.output_audio_transcript.delta", "response.output_text.delta",
    "response.function_call_arguments.delta", "conversation.item.input_audio_transcription.delta",
})
_KEYS = ("response_id", "item_id", "call_id", "name", "audio_start_ms", "audio_end_ms", "content_index",
         "previous_item_id")
_MAX_STR = 200


def _short(v: Any) -> Any:
    if isinstance(v, str) and len(v) > _MAX_STR:
        return v[:_MAX_STR] + "…"
    return v


def payload(ev: dict[str, Any]) -> dict[str, Any]:
    """A small, JSON-safe summary of one server event."""
    t = ev.get("type", "")
    out: dict[str, Any] = {k: ev[k] for k in _KEYS if ev.get(k) is not None}
    if t == "error":
        err = ev.get("error") or {}
        out.update(code=err.get("code"), message=_short(err.get("message")), error_type=err.get("type"))
    elif t in ("response.created", "response.done"):
        r = ev.get("response") or {}
        out.update(response_id=r.get("id"), status=r.get("status"))
        details = r.get("status_details") or {}
        if details:
            out["status_reason"] = details.get("reason") or (details.get("error") or {}).get("message")
        if r.get("usage"):
            u = r["usage"]
            ind, outd = u.get("input_token_details") or {}, u.get("output_token_details") or {}
            out["usage"] = {"input_tokens": u.get("input_tokens"), "output_tokens": u.get("output_tokens"),
                            "total_tokens": u.get("total_tokens"),
                            "input_audio_tokens": ind.get("audio_tokens"), "input_text_tokens": ind.get("text_tokens"),
                            "cached_tokens": ind.get("cached_tokens"),
                            "output_audio_tokens": outd.get("audio_tokens"),
                            "output_text_tokens": outd.get("text_tokens")}
        out["outputs"] = [o.get("type") for o in (r.get("output") or [])]
    elif t in ("session.created", "session.updated"):
        s = ev.get("session") or {}
        audio = s.get("audio") or {}
        td = (audio.get("input") or {}).get("turn_detection")
        out.update(session_id=s.get("id"), model=s.get("model"),
                   voice=(audio.get("output") or {}).get("voice"),
                   turn_detection=td.get("type") if isinstance(td, dict) else None,
                   tools=len(s.get("tools") or []))
    elif t == "response.function_call_arguments.done":
        out["arguments"] = _short(ev.get("arguments"))
    elif t == "conversation.item.input_audio_transcription.completed":
        out["transcript"] = _short(ev.get("transcript"))
    elif t == "conversation.item.input_audio_transcription.failed":
        out["error"] = _short(((ev.get("error") or {}).get("message")))
    elif t == "rate_limits.updated":
        out["rate_limits"] = [{k: r.get(k) for k in ("name", "limit", "remaining", "reset_seconds")}
                              for r in (ev.get("rate_limits") or [])][:4]
    return out


class EventDigest:
    """Decides, per server event, whether (and as what) a `realtime_event` goes out.

    `feed(ev, now)` returns a list of (name, payload) to emit; `flush(now)` returns the
    pending aggregates (call it at response end and session stop)."""

    def __init__(self, *, interval_s: float = 1.0, max_per_s: int = 20) -> None:
        self.interval_s = interval_s
        self.max_per_s = max_per_s
        self._agg: dict[str, list[float]] = {}  # type → [count, bytes, first_at]
        self._window_start = 0.0
        self._window_n = 0
        self.suppressed = 0

    def feed(self, ev: dict[str, Any], now: float) -> list[tuple[str, dict[str, Any]]]:
        t = ev.get("type", "")
        out: list[tuple[str, dict[str, Any]]] = []
        if t in HIGH_RATE:
            a = self._agg.get(t)
            if a is None:
                a = self._agg[t] = [0, 0, now]
            a[0] += 1
            a[1] += len(ev.get("delta") or "")
            if now - a[2] >= self.interval_s:
                out.append(self._take(t, now))
            return out
        if t not in OPERATOR_EVENTS:
            return out
        if t == "response.done":
            out.extend(self.flush(now))
        if now - self._window_start >= 1.0:
            self._window_start, self._window_n = now, 0
        if self._window_n >= self.max_per_s and t not in ("error", "response.done"):
            self.suppressed += 1
            return out
        self._window_n += 1
        p = payload(ev)
        if self.suppressed:
            p["suppressed_before"] = self.suppressed
            self.suppressed = 0
        out.append((t, p))
        return out

    def _take(self, t: str, now: float) -> tuple[str, dict[str, Any]]:
        count, nbytes, first = self._agg.pop(t)
        return t, {"count": int(count), "bytes": int(nbytes), "window_ms": round((now - first) * 1000, 1)}

    def flush(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        return [self._take(t, now) for t in list(self._agg)]
