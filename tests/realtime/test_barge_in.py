"""Barge-in: user speech while the model speaks cuts the audio at once and truncates the
model's item at the position actually played."""
from __future__ import annotations

import asyncio

from runtime.realtime.connection import RATE
from tests.doubles.openai_realtime_server import RealtimeReply
from tests.runtime.helpers import wait_frames_out


async def test_user_speech_truncates_at_the_played_position_with_server_vad(make_rt_session, realtime_api,
                                                                           recorder, speech):
    realtime_api.responses.push(RealtimeReply.say("A very long story " * 12, audio_ms=5000),  # 4x real time
                                RealtimeReply.say("Yes?", audio_ms=300))
    realtime_api.transcripts.push("Stop, please.")
    session = make_rt_session()
    await session.start()
    first = session.push_text("tell me a story")
    await wait_frames_out(session.transport, 40)  # ~0.8 s heard; the whole 5 s has long arrived
    await session.transport.play(speech.samples("Stop, please.", rate=16000), 16000, realtime=True,
                                 tail_silence_ms=600)
    cut = await recorder.wait_for("interrupted")
    truncate = await realtime_api.wait_for("conversation.item.truncate")
    await realtime_api.wait_for("conversation.item.truncate")
    await recorder.wait_for("response_generated", timeout=15)  # the answer to "Stop, please."

    assert first.interrupted and cut.speech_id == first.id and cut.reason == "user_speech"
    # truncated where the user stopped hearing it: not at what the model had generated
    [t] = realtime_api.truncations
    assert t["audio_ms"] > t["audio_end_ms"] + 500  # the model had sent well past the cut
    assert truncate["audio_end_ms"] == int(cut.played_ms) == t["audio_end_ms"]
    assert 800 <= cut.played_ms < 2500
    assert truncate["content_index"] == 0 and truncate["item_id"] == t["item_id"]
    # audio stopped at once: what the transport got is what was played
    assert session.transport.clears >= 1
    frames_before_answer = session.transport.recorded_audio().size - int(0.3 * RATE)
    assert abs(frames_before_answer / RATE * 1000 - cut.played_ms) <= 40
    assert recorder.of("response_cancelled")[0].speech_id == first.id
    # the history keeps only what was heard
    heard = [i for i in session.history if i["role"] == "assistant"][0]
    assert heard["content"] == cut.played_text and 0 < len(heard["content"]) < len("A very long story " * 12)
    assert recorder.first("conversation_item_added").role == "user"
    assert [e.interrupted for e in recorder.of("conversation_item_added") if e.role == "assistant"][0]
    # the server cancelled its own response (interrupt_response): we did not send a cancel
    assert not realtime_api.of("response.cancel")
    assert recorder.of("response_generated")[-1].text == "Yes?"


async def test_local_vad_barge_in_cancels_the_response_in_flight_and_truncates(make_rt_session, realtime_api,
                                                                              recorder, speech):
    realtime_api.responses.push(RealtimeReply.say("Counting slowly one two three four five six", audio_ms=6000,
                                                  speed=1.0))  # still streaming while it plays
    realtime_api.transcripts.push("Wait.")
    session = make_rt_session(turn_detection="local")
    await session.start()
    first = session.say("Counting slowly one two three four five six")
    await wait_frames_out(session.transport, 30)
    await session.transport.play(speech.samples("Wait, wait, wait.", rate=16000), 16000, realtime=True,
                                 tail_silence_ms=500)
    cut = await recorder.wait_for("interrupted")
    await realtime_api.wait_for("response.cancel")
    await realtime_api.wait_for("conversation.item.truncate")
    assert first.interrupted and cut.reason == "user_speech"
    [t] = realtime_api.truncations
    assert t["audio_end_ms"] == int(cut.played_ms) and t["audio_end_ms"] < 6000
    cancelled = [e for e in realtime_api.sent if e["type"] == "response.done"][0]
    assert cancelled["response"]["status"] == "cancelled"
    # our VAD decided: interruption needs min_interruption_duration_ms (200) of speech
    assert recorder.time_of("vad_speech_start") <= recorder.time_of("interrupted")


async def test_an_uninterruptible_say_is_not_cut_by_user_speech(make_rt_session, realtime_api, recorder, speech):
    realtime_api.responses.push(RealtimeReply.say("Please listen to this notice.", audio_ms=1500))
    realtime_api.transcripts.push("Hello?")
    session = make_rt_session(turn_detection="local")
    await session.start()
    notice = session.say("Please listen to this notice.", allow_interruptions=False)
    await wait_frames_out(session.transport, 10)
    await session.transport.play(speech.samples("Hello? Hello?", rate=16000), 16000, realtime=True)
    await asyncio.wait_for(notice.wait_for_playout(), 10)
    assert not notice.interrupted and not recorder.of("interrupted")
    assert not realtime_api.of("conversation.item.truncate")
