"""Providers that fail, stall or talk garbage; malformed audio frames."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from runtime.transports import LocalTransport
from tests.doubles.openai_server import Reply

pytestmark = pytest.mark.asyncio


async def _next_turn_still_works(session, openai_double, recorder) -> None:
    openai_double.chat.push("Back to normal.")
    before = len(recorder.of("response_generated"))
    session.push_text("are you still there?")
    ok = await recorder.wait_for("response_generated", count=before + 1)
    assert ok.text == "Back to normal."
    assert session.status == "active"


async def test_llm_http_500_is_retried_then_reported_and_the_session_keeps_serving(make_session, openai_double, recorder):
    openai_double.chat.push(Reply.error(500), Reply.error(503))
    session = make_session(text_only=True, llm={"max_retries": 1})
    await session.start()
    session.push_text("hello")
    err = await recorder.wait_for("error")
    assert (err.source, err.error_kind, err.attempt) == ("llm", "status", 2)
    assert "503" in err.message and err.recoverable
    assert len(openai_double.requests_to("/chat/completions")) == 2  # one retry
    await session.wait_idle()
    assert session.agent_state == "listening"
    await _next_turn_still_works(session, openai_double, recorder)


async def test_llm_400_is_not_retried(make_session, openai_double, recorder):
    openai_double.chat.push(Reply.error(400, "bad request"))
    session = make_session(text_only=True, llm={"max_retries": 3})
    await session.start()
    session.push_text("hello")
    err = await recorder.wait_for("error")
    assert err.attempt == 1 and "400" in err.message
    assert len(openai_double.requests_to("/chat/completions")) == 1


async def test_llm_that_stalls_past_its_timeout_yields_a_timeout_error(make_session, openai_double, recorder):
    openai_double.chat.push(Reply.stall(30))
    session = make_session(text_only=True, llm={"timeout_s": 0.4})
    await session.start()
    session.push_text("hello")
    err = await recorder.wait_for("error", timeout=5)  # long before the 30 s stall ends (bench/provider_failures.py times it)
    assert (err.source, err.error_kind) == ("llm", "timeout")
    await _next_turn_still_works(session, openai_double, recorder)


async def test_llm_stalling_mid_stream_times_out_and_keeps_nothing_unheard(make_session, openai_double, recorder):
    openai_double.chat.push(Reply(kind="stall", text="Partial words here and", stall_s=30, stall_after_chunks=3))
    session = make_session(text_only=True, llm={"timeout_s": 0.4})
    await session.start()
    session.push_text("hello")
    err = await recorder.wait_for("error", timeout=5)
    assert err.error_kind == "timeout"
    await session.wait_idle()
    assert session.history == [{"role": "user", "content": "hello"}]


async def test_llm_garbage_stream_yields_an_error_event(make_session, openai_double, recorder):
    openai_double.chat.push(Reply.garbage())
    session = make_session(text_only=True)
    await session.start()
    session.push_text("hello")
    err = await recorder.wait_for("error")
    assert (err.source, err.error_kind) == ("llm", "garbage")
    await _next_turn_still_works(session, openai_double, recorder)


async def test_stt_failure_reports_an_error_and_no_reply_is_made(make_session, openai_double, recorder, speech):
    openai_double.transcripts.push(Reply.error(500))
    transport = LocalTransport()
    session = make_session(transport=transport)
    await session.start()
    await transport.play(speech.samples("Hello there, how are you?"), 16000, realtime=False, tail_silence_ms=500)
    err = await recorder.wait_for("error")
    assert err.source == "stt"
    await recorder.wait_for("turn_ended")
    await session.wait_idle()
    assert openai_double.requests_to("/chat/completions") == []
    await _next_turn_still_works(session, openai_double, recorder)


async def test_stt_garbage_reports_an_error(make_session, openai_double, recorder, speech):
    openai_double.transcripts.push(Reply.garbage())
    transport = LocalTransport()
    session = make_session(transport=transport)
    await session.start()
    await transport.play(speech.samples("Hello there, how are you?"), 16000, realtime=False, tail_silence_ms=500)
    err = await recorder.wait_for("error")
    assert err.source == "stt"


async def test_tts_failure_reports_an_error_and_the_reply_still_completes(make_session, openai_double, recorder):
    openai_double.chat.push("First sentence fails here. Second sentence plays fine.")
    # the two sentences are synthesised concurrently, so fail by content, not arrival order
    fail_first = lambda body: Reply.error(500) if body.get("input", "").startswith("First") else None  # noqa: E731
    openai_double.speech.push(fail_first)
    openai_double.speech.push(fail_first)
    transport = LocalTransport()
    session = make_session(transport=transport)
    await session.start()
    session.push_text("talk")
    done = await recorder.wait_for("response_generated")
    assert recorder.first("error").source == "tts"
    assert transport.frames_out > 0
    assert done.text == "Second sentence plays fine."  # only what was heard
    await _next_turn_still_works(session, openai_double, recorder)


async def test_tts_stall_times_out(make_session, openai_double, recorder):
    openai_double.chat.push("Just one sentence here.")
    openai_double.speech.push(Reply.stall(30))
    session = make_session(tts={"timeout_s": 0.4})
    await session.start()
    session.push_text("talk")
    err = await recorder.wait_for("error", timeout=5)
    assert (err.source, err.error_kind) == ("tts", "timeout")
    await recorder.wait_for("response_generated", timeout=5)


async def test_missing_api_key_is_a_config_error_not_a_crash(make_session, openai_double, recorder, monkeypatch):
    monkeypatch.delenv("TEST_OPENAI_KEY")
    session = make_session(text_only=True)
    await session.start()
    session.push_text("hello")
    err = await recorder.wait_for("error")
    assert err.error_kind == "config" and "TEST_OPENAI_KEY" in err.message


async def test_session_ends_cleanly_while_a_provider_is_stalled(make_session, openai_double, recorder):
    openai_double.chat.push(Reply.stall(30))
    session = make_session(text_only=True, llm={"timeout_s": 30})
    await session.start()
    session.push_text("hello")
    await recorder.wait_for("agent_state_changed", count=2)  # listening → thinking
    await asyncio.wait_for(session.stop("operator"), 5)  # not the 30 s stall (bench/provider_failures.py times it)
    assert session.status == "disconnected"
    assert recorder.of("session_stopped")[0].reason == "operator"
    assert await session.wait_closed() == "operator"


async def test_malformed_frames_are_dropped_and_reported(make_session, openai_double, recorder, speech):
    openai_double.transcripts.push("Still listening?")
    openai_double.chat.push("Yes.")
    transport = LocalTransport()
    session = make_session(transport=transport)
    await session.start()
    session.push_audio(b"\x00" * 641, 16000)  # odd byte count
    session.push_audio(b"\x00" * 640, 0)  # no such rate
    session.push_audio(b"\x00" * 640, 999_999)
    session.push_audio(b"\x00" * 640, 16000, channels=0)
    session.push_audio(np.zeros(320, dtype=np.float64), 16000)  # wrong sample type
    session.push_audio(b"\x00" * 642, 16000, channels=2)  # 321 samples: not whole stereo frames
    assert session.audio_state.frames_dropped == 6
    err = recorder.first("error")
    assert (err.source, err.error_kind) == ("audio", "malformed_frame") and "odd byte count" in err.message
    assert len(recorder.of("error")) == 1  # rate-limited: one report per second
    # the session still hears a real utterance afterwards (at 44.1 kHz stereo, resampled)
    await transport.play(speech.samples("Still listening?", rate=44100, channels=2), 44100, channels=2,
                         realtime=False, tail_silence_ms=500)
    done = await recorder.wait_for("response_generated")
    assert done.text == "Yes."
    assert recorder.first("stt_result").text == "Still listening?"
