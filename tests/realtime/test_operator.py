"""Operator actions on a realtime session: say, interrupt, end, user text."""
from __future__ import annotations

import asyncio

from tests.doubles.openai_realtime_server import RealtimeReply
from tests.helpers import wait_for_async
from tests.runtime.helpers import wait_frames_out


async def test_operator_say_asks_the_model_to_speak_the_text_without_tools(make_rt_session, realtime_api, recorder):
    realtime_api.responses.push(RealtimeReply.say("We will close at five.", audio_ms=500))
    session = make_rt_session()
    await session.start()
    handle = session.operator_action("say", text="We will close at five.", by="ops")
    await asyncio.wait_for(handle.wait_for_playout(), 10)
    [params] = realtime_api.requests
    assert "We will close at five." in params["instructions"] and params["tool_choice"] == "none"
    assert params["metadata"] == {"speech_id": handle.id}
    assert recorder.first("operator_action").action == "say" and recorder.first("operator_action").by == "ops"
    created = recorder.first("speech_created")
    assert (created.speech_id, created.source, created.user_initiated) == (handle.id, "say", False)
    assert recorder.first("response_generated").text == "We will close at five."
    assert session.transport.frames_out >= 25


async def test_a_say_without_history_is_an_out_of_band_response(make_rt_session, realtime_api, recorder):
    session = make_rt_session()
    await session.start()
    handle = session.say("Just so you know.", add_to_history=False)
    await asyncio.wait_for(handle.wait_for_playout(), 10)
    assert realtime_api.requests[0]["conversation"] == "none"
    assert not [i for i in session.history if i["role"] == "assistant"]


async def test_operator_interrupt_cancels_truncates_and_says_so(make_rt_session, realtime_api, recorder):
    realtime_api.responses.push(RealtimeReply.say("This goes on and on " * 10, audio_ms=6000, speed=1.0))
    session = make_rt_session()
    await session.start()
    handle = session.push_text("talk")
    await wait_frames_out(session.transport, 25)
    session.operator_action("interrupt", by="ops")
    cut = await recorder.wait_for("interrupted")
    assert handle.interrupted and cut.reason == "operator"
    cancel = await realtime_api.wait_for("response.cancel")
    truncate = await realtime_api.wait_for("conversation.item.truncate")
    [playing] = [e["response"]["id"] for e in realtime_api.sent if e["type"] == "response.created"]
    assert cancel.get("response_id") == playing  # the cancel names the response being played
    assert truncate["audio_end_ms"] == int(cut.played_ms) and 400 <= cut.played_ms < 6000
    frames = session.transport.frames_out
    await asyncio.sleep(0.2)
    assert session.transport.frames_out == frames  # not one more frame after the interruption
    assert session.agent_state == "listening" and session.idle()
    assert session.interrupt() is False  # nothing left to interrupt


async def test_user_text_is_a_user_item_and_a_reply(make_rt_session, realtime_api, recorder):
    realtime_api.responses.push(RealtimeReply.say("Hello to you.", audio_ms=300))
    session = make_rt_session()
    await session.start()
    handle = session.operator_action("message", text="  hello  ", by="ops")
    await asyncio.wait_for(handle.wait_for_playout(), 10)
    [item] = [e["item"] for e in realtime_api.of("conversation.item.create")]
    assert item == {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}
    assert recorder.first("text_received").source == "operator"
    types = recorder.types()
    assert types.index("text_received") < types.index("turn_started") < types.index("turn_ended") \
        < types.index("speech_created") < types.index("response_generated")
    assert [(i["role"], i["content"]) for i in session.history] == [("user", "hello"), ("assistant", "Hello to you.")]


async def test_text_while_the_model_speaks_interrupts_it(make_rt_session, realtime_api, recorder):
    realtime_api.responses.push(RealtimeReply.say("Long answer " * 20, audio_ms=5000), "Short.")
    session = make_rt_session()
    await session.start()
    first = session.push_text("one")
    await wait_frames_out(session.transport, 10)
    second = session.push_text("two")
    await asyncio.wait_for(second.wait_for_playout(), 10)
    assert first.interrupted and not second.interrupted
    assert [e.text for e in recorder.of("response_generated")] == ["Short."]


async def test_queued_speech_waits_its_turn(make_rt_session, realtime_api, recorder):
    realtime_api.responses.push(RealtimeReply.say("First.", audio_ms=400), RealtimeReply.say("Second.", audio_ms=400))
    session = make_rt_session()
    await session.start()
    a, b = session.say("First."), session.say("Second.")
    await asyncio.wait_for(b.wait_for_playout(), 10)
    assert a.done() and not a.interrupted
    assert [e.text for e in recorder.of("response_generated")] == ["First.", "Second."]
    assert not recorder.of("error")  # never two responses at once


async def test_operator_end_stops_the_session_and_closes_the_connection(make_rt_session, realtime_api, recorder):
    realtime_api.responses.push(RealtimeReply.say("Still talking " * 10, audio_ms=4000, speed=1.0))
    session = make_rt_session()
    await session.start()
    handle = session.push_text("talk")
    await wait_frames_out(session.transport, 5)
    session.operator_action("end", by="ops")
    assert await asyncio.wait_for(session.wait_closed(), 10) == "operator"
    assert handle.interrupted and recorder.first("interrupted").reason == "session_end"
    assert recorder.types()[-2:] == ["state_changed", "session_stopped"]
    assert session.status == "disconnected" and session.transport.closed
    await wait_for_async(lambda: not realtime_api._conns, timeout=2, what="the WebSocket to close")
    assert realtime_api.of("conversation.item.truncate")  # even the last words were cut at what was heard


async def test_a_connect_failure_is_an_error_and_the_session_ends(make_rt_session, realtime_api, recorder):
    session = make_rt_session()
    realtime_api.stop()
    import pytest

    from runtime.providers.base import ProviderError

    with pytest.raises(ProviderError):
        await session.start()
    err = recorder.first("error")
    assert err.source == "llm" and not err.recoverable and "connect" in err.message
    assert session.status == "error" and recorder.types()[-1] == "session_stopped"


async def test_the_server_closing_the_socket_ends_the_session(make_rt_session, realtime_api, recorder):
    session = make_rt_session()
    await session.start()
    await realtime_api.wait_for("session.update")
    realtime_api.drop_connections()
    assert await asyncio.wait_for(session.wait_closed(), 10) == "realtime_disconnected"
    assert any(e.error_kind == "connection" for e in recorder.of("error"))


async def test_interrupting_an_out_of_band_say_sends_no_truncate(make_rt_session, realtime_api, recorder):
    realtime_api.responses.push(RealtimeReply.say("An announcement " * 10, audio_ms=4000, speed=1.0))
    session = make_rt_session()
    await session.start()
    handle = session.say("An announcement " * 10, add_to_history=False)
    await wait_frames_out(session.transport, 10)
    assert session.interrupt()
    await realtime_api.wait_for("response.cancel")
    assert handle.interrupted and not realtime_api.of("conversation.item.truncate")
    assert not [e for e in recorder.of("error")]


async def test_a_speech_interrupted_before_the_model_started_it_is_cancelled_unheard(make_rt_session, realtime_api,
                                                                                     recorder):
    realtime_api.responses.push(RealtimeReply.say("Never heard.", audio_ms=1000, first_delay_s=0.2),
                                RealtimeReply.say("Next one.", audio_ms=200))
    session = make_rt_session()
    await session.start()
    first = session.say("Never heard.")
    assert session.interrupt(reason="api") and first.interrupted
    second = session.push_text("go on")
    await asyncio.wait_for(second.wait_for_playout(), 10)
    await realtime_api.wait_for("response.cancel")
    assert [e.text for e in recorder.of("response_generated")] == ["Next one."]
    assert recorder.first("interrupted").played_ms == 0.0
    assert session.transport.frames_out <= 12  # only the next one's 200 ms were played


async def test_a_paused_session_sends_no_user_audio_to_the_model(make_rt_session, realtime_api, recorder):
    session = make_rt_session()
    await session.start()
    silence = b"\x00\x00" * 480
    session.operator_action("pause", by="ops")
    for _ in range(10):
        session.push_audio(silence, 24000)
    session.operator_action("resume", by="ops")
    for _ in range(3):
        session.push_audio(silence, 24000)
    await realtime_api.wait_for("input_audio_buffer.append", count=3)
    await asyncio.sleep(0.1)
    assert len(realtime_api.of("input_audio_buffer.append")) == 3
    assert [e.new_state for e in recorder.of("state_changed")][-2:] == ["paused", "active"]
