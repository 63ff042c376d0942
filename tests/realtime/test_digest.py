"""realtime_event selection, payloads and rate limits."""
from __future__ import annotations

from runtime.realtime.digest import EventDigest, payload


def delta(t: str = "response.output_audio.delta", n: int = 100) -> dict:
    return {"type": t, "response_id": "r1", "item_id": "i1", "delta": "x" * n}


def test_high_rate_deltas_are_aggregated_per_interval():
    d = EventDigest(interval_s=1.0)
    out = [x for i in range(150) for x in d.feed(delta(), i * 0.02)]  # 3 s of 20 ms deltas
    assert [name for name, _ in out] == ["response.output_audio.delta"] * 2
    assert out[0][1]["count"] == 51 and out[0][1]["bytes"] == 5100
    rest = d.flush(3.0)
    assert sum(p["count"] for _, p in out + rest) == 150


def test_response_done_flushes_the_aggregates_first():
    d = EventDigest()
    d.feed(delta(), 0.0)
    d.feed(delta("response.output_audio_transcript.delta", 5), 0.01)
    out = d.feed({"type": "response.done", "response": {"id": "r1", "status": "completed"}}, 0.1)
    assert [n for n, _ in out] == ["response.output_audio.delta", "response.output_audio_transcript.delta",
                                   "response.done"]


def test_other_events_are_capped_per_second_and_the_gap_is_reported():
    d = EventDigest(max_per_s=3)
    ev = {"type": "input_audio_buffer.committed", "item_id": "i"}
    out = [x for i in range(5) for x in d.feed(ev, 0.1 * i)]
    assert len(out) == 3
    later = d.feed(ev, 1.5)
    assert later[0][1]["suppressed_before"] == 2
    assert d.feed({"type": "error", "error": {"code": "x", "message": "m"}}, 1.6)  # errors always pass


def test_uninteresting_events_are_not_emitted():
    d = EventDigest()
    assert d.feed({"type": "response.content_part.added"}, 0.0) == []
    assert d.feed({"type": "conversation.item.done"}, 0.0) == []


def test_payloads_are_small():
    long = "y" * 5000
    p = payload({"type": "conversation.item.input_audio_transcription.completed", "item_id": "i", "transcript": long})
    assert len(p["transcript"]) <= 201
    p = payload({"type": "error", "error": {"code": "bad", "message": long, "type": "invalid_request_error"}})
    assert p["code"] == "bad" and len(p["message"]) <= 201
