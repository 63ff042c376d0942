"""A spoken question through the local transport, end to end against the OpenAI double."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from runtime.transports import LocalTransport
from tests.doubles.openai_server import Reply

from tests.runtime.helpers import DictToolExecutor

pytestmark = pytest.mark.asyncio


async def test_spoken_question_runs_vad_stt_llm_tool_llm_tts_in_order(make_session, openai_double, recorder, speech):
    weather = DictToolExecutor({"get_weather": lambda city: {"city": city, "forecast": "sunny", "c": 21}})
    openai_double.transcripts.push("What is the weather in Paris?")
    openai_double.chat.push(Reply.tool("get_weather", {"city": "Paris"}),
                            Reply.message("It is sunny in Paris. Twenty one degrees."))
    transport = LocalTransport(record_audio=True)
    frames_at: list[float] = []
    session = make_session(tools=weather, transport=transport)
    session.on("audio_out_frame", lambda frame: frames_at.append(time.monotonic()))
    await session.start()

    await transport.play(speech.samples("What is the weather in Paris?"), 16000, realtime=False,
                         tail_silence_ms=600)
    await recorder.wait_for("response_generated", timeout=15)

    # the pipeline's events, in order, interleaved with the HTTP calls the double saw
    chat_calls = openai_double.requests_to("/chat/completions")
    assert len(chat_calls) == 2
    timeline = sorted(
        [(t, e.type) for e, t in zip(recorder.events, recorder.times)]
        + [(r.at, "llm_call") for r in chat_calls]
        + [(frames_at[0], "first_audio_out")])
    order = [name for _, name in timeline]
    expected = ["vad_speech_start", "vad_speech_end", "stt_result", "turn_ended", "llm_call", "tool_called",
                "tool_completed", "llm_call", "first_audio_out", "tts_audio", "response_generated"]
    positions = []
    for name in expected:
        start = positions[-1] + 1 if positions else 0
        assert name in order[start:], f"{name} missing after {expected[:len(positions)]}: {order}"
        positions.append(order.index(name, start))
    assert recorder.first("turn_started").turn_id == recorder.first("turn_ended").turn_id
    assert recorder.first("stt_result").is_final and recorder.first("stt_result").text == "What is the weather in Paris?"

    # the STT got a real WAV of the utterance; the LLM got the tools, then the tool result
    stt_req = openai_double.requests_to("/audio/transcriptions")[0]
    assert stt_req.body["file"]["head"].startswith(b"RIFF") and stt_req.file_bytes > 16000  # > 0.5 s
    assert stt_req.body["model"] == "whisper-1"
    first, second = (c.body for c in chat_calls)
    assert first["tools"][0]["function"]["name"] == "get_weather" and first["stream"] is True
    assert first["messages"][0] == {"role": "system", "content": "You are a test agent."}
    assert first["messages"][-1] == {"role": "user", "content": "What is the weather in Paris?"}
    tool_msg = second["messages"][-1]
    assert tool_msg["role"] == "tool" and json.loads(tool_msg["content"])["forecast"] == "sunny"
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert weather.calls[0][0].arguments == '{"city": "Paris"}'
    assert weather.calls[0][1].session is session

    # both sentences were synthesized separately and played out
    tts_reqs = openai_double.requests_to("/audio/speech")
    assert sorted(r.body["input"] for r in tts_reqs) == ["It is sunny in Paris.", "Twenty one degrees."]
    assert [e.text for e in recorder.of("tts_audio")] == ["It is sunny in Paris.", "Twenty one degrees."]
    assert all(r.body["response_format"] == "pcm" and r.body["voice"] == "alloy" for r in tts_reqs)
    tts_ms = sum(e.duration_ms for e in recorder.of("tts_audio"))
    assert transport.frames_out == pytest.approx(tts_ms / 20, abs=1)
    assert transport.recorded_audio().any()

    # one latency breakdown for the turn, with usage
    m = recorder.first("metrics_collected").metrics
    for name in ("end_of_utterance_delay_ms", "stt_duration_ms", "llm_ttft_ms", "tts_ttfb_ms", "end_to_end_ms",
                 "framework_overhead_ms"):
        assert getattr(m, name) is not None and getattr(m, name) >= 0, name
    assert m.end_of_utterance_delay_ms >= 100  # the configured minimum endpointing delay
    assert m.end_to_end_ms > m.end_of_utterance_delay_ms
    assert (m.llm_calls, m.tool_calls, m.prompt_tokens) == (2, 1, 22)
    assert m.tts_characters == len("It is sunny in Paris.") + len("Twenty one degrees.")

    assert [i["role"] for i in session.history] == ["user", "assistant", "tool", "assistant"]
    assert session.history[-1]["content"] == "It is sunny in Paris. Twenty one degrees."
    await asyncio.wait_for(session.wait_idle(), 5)
    assert session.idle() and session.agent_state == "listening"  # the turn is over: back to listening
    assert transport.transcripts == [("user", "What is the weather in Paris?", True),
                                     ("agent", "It is sunny in Paris. Twenty one degrees.", True)]


async def test_parallel_tool_calls_run_concurrently(make_session, openai_double, recorder):
    import asyncio

    running = 0
    peak = 0

    async def slow(**_: object) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return "ok"

    tools = DictToolExecutor({"a": slow, "b": slow})
    openai_double.chat.push(Reply.tools(("a", {}), ("b", {})), Reply.message("Both done."))
    session = make_session(tools=tools, text_only=True)
    await session.start()
    session.push_text("do both")
    await recorder.wait_for("response_generated")
    assert peak == 2
    assert [e.name for e in recorder.of("tool_completed")] == ["a", "b"]


async def test_tool_steps_stop_at_max_tool_steps(make_session, openai_double, recorder):
    tools = DictToolExecutor({"again": lambda: "more"})
    openai_double.chat.push(*[Reply.tool("again", {}) for _ in range(5)])
    session = make_session(tools=tools, text_only=True, turn={"max_tool_steps": 2})
    await session.start()
    session.push_text("loop")
    await recorder.wait_for("response_generated")
    calls = openai_double.requests_to("/chat/completions")
    assert len(calls) == 3  # two tool steps, then a call that may not use tools
    assert calls[-1].body["tool_choice"] == "none"
    assert len(recorder.of("tool_called")) == 2


async def test_a_failing_tool_emits_tool_error_and_the_model_sees_it(make_session, openai_double, recorder):
    def broken() -> str:
        raise RuntimeError("database down")

    openai_double.chat.push(Reply.tool("broken", {}), Reply.message("Sorry, that failed."))
    session = make_session(tools=DictToolExecutor({"broken": broken}), text_only=True)
    await session.start()
    session.push_text("try it")
    await recorder.wait_for("response_generated")
    err = recorder.first("tool_error")
    assert err.name == "broken" and "database down" in err.error and err.error_kind == "exception"
    assert openai_double.requests_to("/chat/completions")[1].body["messages"][-1]["content"] == "database down"


async def test_the_next_sentence_is_synthesized_while_the_current_one_streams(make_session, openai_double, recorder):
    from tests.doubles.openai_server import tone_pcm

    openai_double.chat.push("The first sentence is slow to synthesize. The second one is quick.")
    openai_double.speech.push(Reply(pcm=tone_pcm(0.6), chunk_delay_s=0.1), Reply(pcm=tone_pcm(0.3)))
    session = make_session()
    await session.start()
    session.push_text("talk")
    await recorder.wait_for("response_generated")
    first_done = recorder.time_of("tts_audio")
    second_request = openai_double.requests_to("/audio/speech")[1]
    assert second_request.at < first_done  # requested while the first sentence was still arriving
    assert [e.text for e in recorder.of("tts_audio")] == ["The first sentence is slow to synthesize.",
                                                         "The second one is quick."]
    assert recorder.first("response_generated").text == \
        "The first sentence is slow to synthesize. The second one is quick."
