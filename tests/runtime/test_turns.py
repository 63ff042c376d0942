"""Turn detection and endpointing: min/max delay, resumed speech, transcripts required."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.transports import LocalTransport
from runtime.turns import sounds_unfinished


@pytest.mark.parametrize("text,unfinished", [
    ("What is the weather in Paris?", False), ("I want to book a table and", True), ("so um", True),
    ("Let me think,", True), ("Book it for seven", False), ("", False), ("Is it the", True),
])
def test_sounds_unfinished(text, unfinished):
    assert sounds_unfinished(text) is unfinished


async def test_turn_commits_after_the_min_delay_when_the_transcript_is_finished(make_session, openai_double,
                                                                                recorder, speech):
    openai_double.transcripts.push("What time is it?")
    transport = LocalTransport()
    session = make_session(transport=transport, turn={"min_endpointing_delay_ms": 400,
                                                      "max_endpointing_delay_ms": 3000})
    await session.start()
    await transport.play(speech.samples("What time is it?"), 16000, realtime=False, tail_silence_ms=500)
    ended = await recorder.wait_for("turn_ended")
    assert 400 <= ended.end_of_utterance_delay_ms < 3000
    assert ended.text == "What time is it?" and ended.source == "audio"


async def test_an_unfinished_transcript_waits_for_the_max_delay(make_session, openai_double, recorder, speech):
    openai_double.transcripts.push("I would like to order a pizza and")
    transport = LocalTransport()
    session = make_session(transport=transport, turn={"min_endpointing_delay_ms": 100,
                                                      "max_endpointing_delay_ms": 1200})
    await session.start()
    await transport.play(speech.samples("I would like to order a pizza and"), 16000, realtime=False,
                         tail_silence_ms=500)
    ended = await recorder.wait_for("turn_ended", timeout=5)
    assert ended.end_of_utterance_delay_ms >= 1200


async def test_speech_resuming_before_the_commit_continues_the_same_turn(make_session, openai_double, recorder,
                                                                         speech):
    openai_double.transcripts.push("I need a taxi", "to the airport.")
    openai_double.chat.push("Booking a taxi to the airport.")
    transport = LocalTransport()
    session = make_session(transport=transport, vad={"min_silence_ms": 200},
                           turn={"min_endpointing_delay_ms": 1500, "max_endpointing_delay_ms": 3000})
    await session.start()
    pause = np.zeros(16000 * 4 // 10, dtype=np.int16)  # 400 ms: ends VAD speech, not the turn
    audio = np.concatenate([speech.samples("I need a taxi"), pause, speech.samples("to the airport")])
    await transport.play(audio, 16000, realtime=True, tail_silence_ms=300)
    await recorder.wait_for("response_generated", timeout=10)
    assert [e.type for e in recorder.events if e.type in ("vad_speech_start", "vad_speech_end")].count(
        "vad_speech_start") == 2
    assert len(recorder.of("stt_result")) == 2
    assert len(recorder.of("turn_started")) == 1 and len(recorder.of("turn_ended")) == 1
    assert recorder.first("turn_ended").text == "I need a taxi to the airport."
    assert openai_double.requests_to("/chat/completions")[0].body["messages"][-1]["content"] == \
        "I need a taxi to the airport."


async def test_an_empty_transcript_ends_the_turn_without_a_reply(make_session, openai_double, recorder, speech):
    openai_double.transcripts.push("")
    transport = LocalTransport()
    session = make_session(transport=transport)
    await session.start()
    await transport.play(speech.samples("Hmm."), 16000, realtime=False, tail_silence_ms=500)
    ended = await recorder.wait_for("turn_ended")
    assert ended.text == ""
    await session.wait_idle()
    assert openai_double.requests_to("/chat/completions") == [] and session.history == []


async def test_text_input_ends_a_turn_at_once(make_session, openai_double, recorder):
    session = make_session(text_only=True, turn={"min_endpointing_delay_ms": 5000, "max_endpointing_delay_ms": 5000})
    await session.start()
    session.push_text("quick")
    ended = await recorder.wait_for("turn_ended")
    assert ended.source == "text" and ended.end_of_utterance_delay_ms == 0
