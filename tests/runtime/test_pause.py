"""Pause and resume: a paused session neither listens nor speaks; resume carries on."""
from __future__ import annotations

import asyncio

import pytest

from runtime.transports import LocalTransport
from tests.doubles.openai_server import Reply
from tests.runtime.helpers import wait_frames_out

pytestmark = pytest.mark.asyncio


def statuses(recorder) -> list[tuple[str, str]]:
    return [(e.old_state, e.new_state) for e in recorder.of("state_changed")]


async def test_a_paused_session_ignores_speech_and_text_and_answers_again_after_resume(
        make_session, openai_double, recorder, speech):
    openai_double.transcripts.push("Do you open on Sundays?")
    openai_double.chat.push(Reply.message("We open at nine."))
    transport = LocalTransport(record_audio=True)
    session = make_session(transport=transport)
    await session.start()

    assert session.pause() is True
    assert session.status == "paused" and session.audio_state.muted is True
    await transport.play(speech.samples("What time do you open?"), 16000, realtime=False, tail_silence_ms=600)
    assert session.push_text("Hello? Anyone there?") is None
    await asyncio.sleep(1.0)
    assert openai_double.requests_to("/chat/completions") == []
    assert openai_double.requests_to("/audio/transcriptions") == []
    assert recorder.of("vad_speech_start") == [] and recorder.of("response_generated") == []
    assert [e.text for e in recorder.of("text_received")] == ["Hello? Anyone there?"]  # logged, not answered

    assert session.resume() is True
    await transport.play(speech.samples("Do you open on Sundays?"), 16000, realtime=False, tail_silence_ms=600)
    reply = await recorder.wait_for("response_generated", timeout=15)
    assert reply.text == "We open at nine."
    assert len(openai_double.requests_to("/audio/transcriptions")) == 1  # the utterance after resume only
    assert [c.body["messages"][-1]["content"] for c in openai_double.requests_to("/chat/completions")] == [
        "Do you open on Sundays?"]
    assert statuses(recorder)[-2:] == [("active", "paused"), ("paused", "active")]


async def test_agent_audio_is_held_while_paused_and_plays_on_after_resume(make_session, openai_double, recorder):
    openai_double.chat.push(Reply.message("Our opening hours are nine to five on weekdays and ten to four on Saturdays."))
    transport = LocalTransport(record_audio=True)
    session = make_session(transport=transport)
    await session.start()
    session.push_text("When are you open?")
    await wait_frames_out(transport, 10)

    session.pause()
    held_at = transport.frames_out
    await asyncio.sleep(0.5)
    assert transport.frames_out <= held_at + 1  # at most the frame already on its way
    assert recorder.of("response_generated") == [] and recorder.of("interrupted") == []

    session.resume()
    reply = await recorder.wait_for("response_generated", timeout=20)
    assert reply.text.startswith("Our opening hours") and not reply.interrupted
    assert transport.frames_out > held_at + 10


async def test_a_say_while_paused_waits_for_resume(make_session, openai_double, recorder):
    transport = LocalTransport()
    session = make_session(transport=transport, text_only=True)
    await session.start()
    session.pause()
    session.say("Thanks for holding.")
    await asyncio.sleep(0.3)
    assert transport.texts_out == []
    session.resume()
    await recorder.wait_for("response_generated", timeout=10)
    assert transport.texts_out == ["Thanks for holding."]


async def test_pause_and_resume_follow_the_state_machine(make_session, recorder):
    session = make_session(text_only=True)
    assert session.pause() is False  # not started: initializing
    await session.start()
    assert session.resume() is False  # active, not paused
    assert session.pause() is True and session.pause() is False
    assert session.resume() is True
    assert statuses(recorder) == [("initializing", "connected"), ("connected", "active"), ("active", "paused"),
                                  ("paused", "active")]


async def test_a_transport_reconnect_goes_disconnected_then_connected_and_keeps_a_pause(make_session, recorder):
    session = make_session(text_only=True)
    await session.start()
    session.pause()
    session.transport_disconnected("reconnecting")
    assert session.status == "disconnected" and not session.closed and session.stopping is False
    session.transport_reconnected()
    assert session.status == "paused"
    assert statuses(recorder)[2:] == [("active", "paused"), ("paused", "disconnected"), ("disconnected", "connected"),
                                      ("connected", "active"), ("active", "paused")]
    session.resume()
    await session.stop("done")
    assert statuses(recorder)[-1] == ("active", "disconnected") and session.stopping is True
