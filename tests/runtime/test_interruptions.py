"""Barge-in: user speech during playout stops the audio at once; history keeps what was heard."""
from __future__ import annotations

import asyncio

import pytest

from runtime.transports import LocalTransport
from tests.helpers import wait_for_async
from tests.runtime.helpers import wait_frames_out

pytestmark = pytest.mark.asyncio

LONG = ("This is a long answer that keeps going. It has several sentences in it. "
        "Each one is synthesized on its own. The user will not hear the end of it.")


async def _speaking(session, transport, frames: int = 15) -> None:
    await wait_frames_out(transport, frames)


async def test_user_speech_during_playout_stops_audio_within_one_frame(make_session, openai_double, recorder, speech):
    openai_double.transcripts.push("Stop please.")
    openai_double.chat.push("Okay, stopping.")
    transport = LocalTransport()
    session = make_session(transport=transport)
    await session.start()
    handle = session.say(LONG)
    await _speaking(session, transport)

    frames_at_interrupt: list[int] = []
    frames_at_user_done: list[int] = []
    session.on("interrupted", lambda e: frames_at_interrupt.append(transport.frames_out))
    session.on("vad_speech_end", lambda e: frames_at_user_done.append(transport.frames_out))
    await transport.play(speech.samples("Stop, stop, please stop talking now."), 16000, realtime=True,
                         tail_silence_ms=500)
    await handle.wait_for_playout()
    assert handle.interrupted

    event = recorder.first("interrupted")
    assert event.speech_id == handle.id and event.reason == "user_speech"
    assert recorder.first("response_cancelled").speech_id == handle.id
    # between the interruption and the end of the user's speech (hundreds of ms), at most one
    # more frame of the old speech may leave (none here: clearing the playout is synchronous)
    assert frames_at_user_done[0] - frames_at_interrupt[0] <= 1
    # the history holds only what was played, as whole words
    played = event.played_text
    assert played and LONG.startswith(played) and len(played) < len(LONG)
    assert event.played_ms == pytest.approx(frames_at_interrupt[0] * 20, abs=20)
    heard_fraction = event.played_ms / sum(e.duration_ms for e in recorder.of("tts_audio")
                                           if e.speech_id == handle.id) if recorder.of("tts_audio") else 1
    assert len(played) <= len(LONG) * max(heard_fraction, 0) + 40
    agent_items = [i for i in session.history if i["role"] == "assistant"]
    assert agent_items[0]["content"] == played
    assert recorder.first("conversation_item_added").interrupted or any(
        e.interrupted for e in recorder.of("conversation_item_added") if e.role == "assistant")

    # the user's barge-in becomes the next turn and gets an answer
    await recorder.wait_for("response_generated", timeout=10)
    assert session.history[-2] == {"role": "user", "content": "Stop please."}
    assert session.history[-1] == {"role": "assistant", "content": "Okay, stopping."}


async def test_say_with_allow_interruptions_false_plays_to_the_end(make_session, openai_double, recorder, speech):
    openai_double.transcripts.push("hello?")
    transport = LocalTransport()
    session = make_session(transport=transport)
    await session.start()
    handle = session.say("Please listen to this whole notice.", allow_interruptions=False)
    await _speaking(session, transport, frames=3)
    await transport.play(speech.samples("Hello, hello, are you there?"), 16000, realtime=False)
    await handle.wait_for_playout()
    assert not handle.interrupted
    assert recorder.of("interrupted") == []
    assert recorder.first("response_generated").text == "Please listen to this whole notice."
    assert session.interrupt(reason="user_speech") is False


async def test_interrupt_api_stops_speech_and_records_partial_text(make_session, recorder):
    transport = LocalTransport()
    session = make_session(transport=transport)
    await session.start()
    handle = session.say(LONG)
    await _speaking(session, transport, frames=20)
    assert session.interrupt(reason="api") is True
    frames = transport.frames_out
    await asyncio.sleep(0.1)
    assert transport.frames_out == frames
    assert transport.clears == 1
    assert handle.interrupted and handle.done()
    assert session.agent_state == "listening"
    assert recorder.first("interrupted").reason == "api"
    assert session.history[-1]["content"] == handle.played_text != ""
    await asyncio.sleep(0)
    assert transport.transcripts[-1] == ("agent", handle.played_text, True)  # what was heard, not the whole text


async def test_short_noise_below_min_interruption_duration_does_not_interrupt(make_session, recorder, speech):
    transport = LocalTransport()
    session = make_session(transport=transport, turn={"min_interruption_duration_ms": 5000})
    await session.start()
    handle = session.say("A short sentence to finish.")
    await _speaking(session, transport, frames=2)
    await transport.play(speech.samples("Hey!"), 16000, realtime=False)
    await handle.wait_for_playout()
    assert not handle.interrupted


async def test_text_input_interrupts_current_speech(make_session, openai_double, recorder):
    openai_double.chat.push("New answer.")
    transport = LocalTransport()
    session = make_session(transport=transport)
    await session.start()
    handle = session.say(LONG)
    await _speaking(session, transport, frames=5)
    session.push_text("actually, something else")
    await handle.wait_for_playout()
    assert handle.interrupted
    await recorder.wait_for("response_generated")
    assert recorder.of("response_generated")[-1].text == "New answer."


async def test_user_speech_while_the_agent_thinks_cancels_the_llm(make_session, openai_double, recorder, speech):
    from tests.doubles.openai_server import Reply

    openai_double.chat.push(Reply.message("This reply streams very slowly word by word.", chunk_delay_s=0.3),
                            "Second answer.")
    openai_double.transcripts.push("wait, never mind")
    transport = LocalTransport()
    session = make_session(transport=transport)
    await session.start()
    handle = session.push_text("tell me something")
    await wait_for_async(lambda: openai_double.requests_to("/chat/completions"), what="the LLM call")  # it streams
    assert session.agent_state == "thinking"
    await transport.play(speech.samples("Wait, never mind, forget it."), 16000, realtime=False, tail_silence_ms=500)
    await handle
    assert handle.interrupted
    assert recorder.first("interrupted").played_text == ""
    await recorder.wait_for("response_generated")
    assert [i["content"] for i in session.history if i["role"] == "assistant"] == ["Second answer."]
    assert transport.frames_out > 0
