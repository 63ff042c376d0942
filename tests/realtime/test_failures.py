"""What the model side can get wrong, and how the session copes."""
from __future__ import annotations

import asyncio

from tests.doubles.openai_realtime_server import RealtimeReply


async def test_garbage_from_the_server_is_an_error_event_and_the_session_goes_on(make_rt_session, realtime_api,
                                                                                recorder):
    session = make_rt_session()
    await session.start()
    await realtime_api.wait_for("session.update")
    realtime_api.inject_raw("this is not json")
    realtime_api.inject_raw("[1, 2, 3]")
    err = await recorder.wait_for("error")
    assert err.source == "llm" and err.error_kind == "garbage" and err.recoverable
    realtime_api.responses.push(RealtimeReply.say("Still here.", audio_ms=200))
    handle = session.push_text("are you there?")
    await asyncio.wait_for(handle.wait_for_playout(), 10)
    assert recorder.of("response_generated")[-1].text == "Still here."
    assert len(recorder.of("error")) == 2


async def test_a_failed_response_is_an_error_and_the_next_turn_works(make_rt_session, realtime_api, recorder):
    realtime_api.responses.push(RealtimeReply(fail="upstream overloaded"), RealtimeReply.say("Recovered.", audio_ms=200))
    session = make_rt_session()
    await session.start()
    failed = session.push_text("one")
    await asyncio.wait_for(failed.wait_for_playout(), 10)
    err = recorder.first("error")
    assert err.source == "llm" and "upstream overloaded" in err.message and failed.error
    ok = session.push_text("two")
    await asyncio.wait_for(ok.wait_for_playout(), 10)
    assert recorder.of("response_generated")[-1].text == "Recovered."
    assert session.agent_state == "listening"


async def test_a_server_error_event_is_an_error_event(make_rt_session, realtime_api, recorder):
    session = make_rt_session()
    await session.start()
    await realtime_api.wait_for("session.update")
    realtime_api.inject({"type": "error", "error": {"type": "invalid_request_error", "code": "invalid_value",
                                                    "message": "Invalid value: 'x'.", "param": None}})
    err = await recorder.wait_for("error")
    assert err.error_kind == "invalid_value" and "Invalid value" in err.message
    named = [e for e in recorder.of("realtime_event") if e.name == "error"]
    assert named and named[0].payload["code"] == "invalid_value"


async def test_malformed_user_audio_is_dropped_and_reported_once(make_rt_session, realtime_api, recorder):
    session = make_rt_session()
    await session.start()
    for _ in range(5):
        session.push_audio(b"\x01\x02\x03", 24000)  # an odd byte count: not 16-bit samples
    session.push_audio(b"\x00\x00" * 480, 24000)
    assert session.audio_state.frames_dropped == 5 and session.audio_state.frames_received == 1
    assert [e.error_kind for e in recorder.of("error")] == ["malformed_frame"]
