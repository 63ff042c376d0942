"""The session API: text agents, say / generate_reply, speech handles, operator actions,
vision, AudioState, pause/resume, lifecycle events."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from runtime.transports import LocalTransport
from tests.doubles.openai_server import Reply

from tests.runtime.helpers import DictToolExecutor, wait_frames_out

pytestmark = pytest.mark.asyncio


async def test_text_agent_answers_text_with_text(make_session, openai_double, recorder):
    openai_double.chat.push("Hi! How can I help?")
    transport = LocalTransport()
    session = make_session(text_only=True, transport=transport)
    await session.start()
    assert session.text_only and recorder.first("session_started").text_only
    handle = session.push_text("  hello  ")
    await handle
    assert handle.done() and not handle.interrupted
    assert transport.texts_out == ["Hi! How can I help?"]
    assert openai_double.requests_to("/audio/speech") == []
    assert session.history == [{"role": "user", "content": "hello"},
                                {"role": "assistant", "content": "Hi! How can I help?"}]
    m = recorder.first("metrics_collected").metrics
    assert m.llm_ttft_ms is not None and m.tts_ttfb_ms is None and m.total_tokens > 0


async def test_lifecycle_events_and_states(make_session, recorder):
    session = make_session(text_only=True)
    assert session.status == "initializing"
    await session.start()
    await session.stop("bye")
    statuses = [(e.old_state, e.new_state) for e in recorder.of("state_changed")]
    assert statuses == [("initializing", "connected"), ("connected", "active"), ("active", "disconnected")]
    assert recorder.types()[0] == "session_started" and recorder.types()[-1] == "session_stopped"
    assert recorder.first("session_stopped").reason == "bye"
    await session.stop("again")  # idempotent
    assert len(recorder.of("session_stopped")) == 1


async def test_say_speaks_without_the_llm_and_records_history(make_session, openai_double, recorder):
    transport = LocalTransport()
    session = make_session(transport=transport)
    await session.start()
    h = session.say("Welcome to the demo.")
    assert recorder.first("speech_created").source == "say"
    await h.wait_for_playout()
    assert openai_double.requests_to("/chat/completions") == []
    assert [r.body["input"] for r in openai_double.requests_to("/audio/speech")] == ["Welcome to the demo."]
    assert session.history == [{"role": "assistant", "content": "Welcome to the demo."}]
    assert transport.frames_out > 0
    states = [e.new_state for e in recorder.of("agent_state_changed")]
    assert states == ["listening", "thinking", "speaking", "listening"]


async def test_speeches_queue_and_play_one_after_another(make_session, recorder):
    session = make_session()
    await session.start()
    a = session.say("First announcement.")
    b = session.say("Second announcement.", add_to_history=False)
    await b
    assert a.done() and b.done()
    assert [e.text for e in recorder.of("response_generated")] == ["First announcement.", "Second announcement."]
    assert session.history == [{"role": "assistant", "content": "First announcement."}]


async def test_generate_reply_with_instructions(make_session, openai_double):
    openai_double.chat.push("Hello and welcome!")
    session = make_session(text_only=True, llm={"model": "my-model", "temperature": 0.3, "max_tokens": 50})
    await session.start()
    await session.generate_reply(instructions="Greet the user.")
    body = openai_double.requests_to("/chat/completions")[0].body
    assert body["messages"][0]["content"].endswith("Greet the user.")
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("my-model", 0.3, 50)
    assert body["stream_options"] == {"include_usage": True}


async def test_tools_see_the_session_user_data_and_ids(make_session, openai_double, recorder):
    seen = {}

    async def remember(**_):
        return "ok"

    tools = DictToolExecutor({"remember": remember})
    openai_double.chat.push(Reply.tool("remember", {}), "Done.")
    session = make_session(text_only=True, tools=tools)
    session.user_data["customer"] = "c-42"
    await session.start()
    await session.push_text("remember this")
    call, inv = tools.calls[0]
    seen.update(session_id=inv.session_id, agent_id=inv.agent_id, user_data=inv.user_data)
    assert seen == {"session_id": session.id, "agent_id": "test-agent", "user_data": {"customer": "c-42"}}
    assert inv.speech_handle is not None and inv.session is session


async def test_operator_actions_are_logged_then_performed(make_session, openai_double, recorder):
    openai_double.chat.push("Answer to operator message.")
    transport = LocalTransport()
    session = make_session(transport=transport)
    await session.start()
    h = session.operator_action("say", text="An operator says hello to you all.", by="ops@example.com")
    await wait_frames_out(transport, 3)
    session.operator_action("interrupt", by="ops@example.com")
    assert h.interrupted
    r = session.operator_action("message", text="what now?")
    await r
    session.operator_action("end")
    assert await asyncio.wait_for(session.wait_closed(), 5) == "operator"
    actions = [(e.action, e.by) for e in recorder.of("operator_action")]
    assert actions == [("say", "ops@example.com"), ("interrupt", "ops@example.com"), ("message", ""), ("end", "")]
    assert recorder.first("interrupted").reason == "operator"
    assert recorder.first("text_received").source == "operator"


async def test_vision_sends_the_latest_video_frame_with_the_next_request(make_session, openai_double):
    from runtime.imaging import encode_png

    openai_double.chat.push("I see a red square.", "No new picture.")
    session = make_session(text_only=True, vision=True)
    await session.start()
    png = encode_png(np.full((8, 8, 3), (255, 0, 0), dtype=np.uint8))
    assert png.startswith(b"\x89PNG")
    session.push_video_frame(png, "image/png")
    await session.push_text("what do you see?")
    await session.push_text("and now?")
    first, second = (r.body for r in openai_double.requests_to("/chat/completions"))
    content = first["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "what do you see?"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    assert isinstance(second["messages"][-1]["content"], str)  # used once
    assert session.history[0] == {"role": "user", "content": "what do you see?"}  # history stays text


async def test_vision_off_ignores_video(make_session, openai_double):
    session = make_session(text_only=True)
    await session.start()
    session.push_video_frame(b"\x89PNG...", "image/png")
    await session.push_text("hello")
    assert isinstance(openai_double.requests_to("/chat/completions")[0].body["messages"][-1]["content"], str)


async def test_audio_state_is_kept_current(make_session, recorder, speech, openai_double):
    openai_double.transcripts.push("Hello.")
    openai_double.chat.push("Hi.")
    transport = LocalTransport()
    session = make_session(transport=transport)
    await session.start()
    st = session.audio_state
    assert st.stream_active and st.vad_enabled and st.vad_sensitivity == 0.5 and st.frame_ms == 20
    assert st.last_audio_time is None
    speaking = []
    buffered = []
    session.on("vad_speech_start", lambda e: speaking.append(session.audio_state.speaking))
    session.on("audio_out_frame", lambda f: buffered.append(session.audio_state.buffer_size))
    samples = speech.samples("Hello there, my friend.", rate=48000, channels=2)
    await transport.play(samples, 48000, channels=2, realtime=False, tail_silence_ms=500)
    await recorder.wait_for("metrics_collected")
    assert speaking == [True] and not st.speaking
    assert max(buffered) > 0 and st.buffer_size == 0  # queued agent audio, drained at the end
    assert (st.sample_rate, st.channels) == (48000, 2) and st.last_audio_time is not None
    assert st.frames_received >= samples.size // 1920 and st.frames_sent == transport.frames_out
    assert st.current_latency_ms == recorder.first("metrics_collected").metrics.end_to_end_ms
    received = recorder.of("audio_received")
    assert received and all(45 <= e.frames <= 50 for e in received)  # aggregated, ~1 per second
    assert received[0].sample_rate == 48000 and received[0].level_dbfs > -60
    assert recorder.of("audio_streamed")
    await session.stop()
    assert not st.stream_active


async def test_paused_session_ignores_audio(make_session, recorder, speech):
    transport = LocalTransport()
    session = make_session(transport=transport)
    await session.start()
    session.pause()
    assert session.status == "paused" and session.audio_state.muted
    await transport.play(speech.samples("Can you hear me?"), 16000, realtime=False, tail_silence_ms=500)
    assert recorder.of("vad_speech_start") == []
    session.resume()
    assert session.status == "active"


async def test_every_frame_listeners_get_frames_but_the_sink_gets_aggregates(make_session, recorder, speech):
    transport = LocalTransport()
    session = make_session(transport=transport)
    frames_in = []
    session.on("audio_in_frame", lambda f: frames_in.append(f.size))
    await session.start()
    await transport.play(np.zeros(16000 * 2, dtype=np.int16), 16000, realtime=False)
    assert frames_in == [320] * 100
    assert len(recorder.of("audio_received")) == 2
