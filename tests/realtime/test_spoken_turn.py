"""A spoken question gets a spoken answer over the Realtime protocol, events in order."""
from __future__ import annotations

import numpy as np

from runtime.realtime.connection import RATE
from tests.doubles.openai_realtime_server import RealtimeReply
from tests.helpers import wait_for_async

ANSWER = "It is sunny in Paris today."


def index(types: list[str], name: str) -> int:
    assert name in types, f"no {name} in {types}"
    return types.index(name)


async def test_a_spoken_question_gets_a_spoken_answer_with_server_vad(make_rt_session, realtime_api, recorder, speech):
    realtime_api.transcripts.push("What is the weather in Paris?")
    realtime_api.responses.push(RealtimeReply.say(ANSWER, audio_ms=1200))
    session = make_rt_session()
    await session.start()
    question = speech.samples("What is the weather in Paris?", rate=16000)
    await session.transport.play(question, 16000, realtime=False, tail_silence_ms=900)
    generated = await recorder.wait_for("response_generated", timeout=15)
    await recorder.wait_for("metrics_collected")

    assert generated.text == ANSWER and not generated.interrupted
    types = recorder.types()
    order = ["session_started", "vad_speech_start", "turn_started", "vad_speech_end", "stt_result", "turn_ended",
             "speech_created", "response_generated", "metrics_collected"]
    positions = [index(types, t) for t in order]
    assert positions == sorted(positions), types
    assert types.index("agent_state_changed") < types.index("response_generated")
    assert recorder.first("stt_result").text == "What is the weather in Paris?"
    assert recorder.first("turn_ended").text == "What is the weather in Paris?"
    states = [e.new_state for e in recorder.of("agent_state_changed")]
    assert states[-3:] == ["thinking", "speaking", "listening"]
    # the model heard the question at 24 kHz pcm16, as the protocol wants
    heard_ms = realtime_api.appended_ms()
    assert abs(heard_ms - (question.size / 16 + 900)) < 60
    assert realtime_api.committed_audio and len(realtime_api.committed_audio[0]) / 2 / RATE > 1.0
    # and the session's own configuration went first
    update = realtime_api.received[0]
    assert update["type"] == "session.update"
    cfg = update["session"]
    assert cfg["instructions"] == "You are a realtime test agent."
    assert cfg["audio"]["output"]["voice"] == "marin"
    assert cfg["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert cfg["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert realtime_api.connections[0]["path"].startswith("/v1/realtime?model=gpt-realtime")
    assert realtime_api.connections[0]["headers"]["authorization"] == "Bearer sk-test-realtime"
    # the answer's audio reached the transport, all of it, paced in 20 ms frames
    out = session.transport.recorded_audio()
    assert session.transport.out_rate == RATE
    assert abs(out.size / RATE * 1000 - 1200) <= 20
    assert np.abs(out.astype(np.int32)).max() > 1000
    await wait_for_async(lambda: ("agent", ANSWER, True) in session.transport.transcripts, timeout=1,
                         what="the agent's transcript")  # published by a task of its own
    assert ("user", "What is the weather in Paris?", True) in session.transport.transcripts
    # history and metrics
    assert [(i["role"], i["content"]) for i in session.history] == [
        ("user", "What is the weather in Paris?"), ("assistant", ANSWER)]
    m = recorder.first("metrics_collected").metrics
    assert m.end_to_end_ms is not None and m.end_to_end_ms > 0
    assert m.framework_overhead_ms is not None and m.framework_overhead_ms >= 0
    assert m.llm_calls == 1 and m.prompt_tokens > 0 and m.completion_tokens > 0
    assert m.total_tokens == m.prompt_tokens + m.completion_tokens
    assert session.audio_state.current_latency_ms == m.end_to_end_ms


async def test_usage_and_operator_events_are_realtime_events_and_deltas_are_aggregated(
        make_rt_session, realtime_api, recorder):
    realtime_api.responses.push(RealtimeReply.say(ANSWER, audio_ms=1500, chunk_ms=20))
    session = make_rt_session()
    await session.start()
    session.push_text("weather?")
    await recorder.wait_for("response_generated", timeout=15)
    names = [e.name for e in recorder.of("realtime_event")]
    assert {"session.created", "session.updated", "response.created", "response.done"} <= set(names)
    done = next(e for e in recorder.of("realtime_event") if e.name == "response.done")
    usage = done.payload["usage"]
    assert usage["output_audio_tokens"] > 0 and usage["output_text_tokens"] > 0
    assert usage["input_text_tokens"] > 0 and usage["input_audio_tokens"] is not None
    assert session.usage["output_audio_tokens"] == usage["output_audio_tokens"] and session.usage["responses"] == 1
    assert session.usage["total_tokens"] == recorder.first("metrics_collected").metrics.total_tokens
    # 75 audio deltas arrived; far fewer realtime_events describe them, with the counts
    deltas = [e for e in recorder.of("realtime_event") if e.name == "response.output_audio.delta"]
    assert 1 <= len(deltas) <= 3
    assert sum(e.payload["count"] for e in deltas) == 75


async def test_every_server_event_reaches_in_process_listeners_as_sdk_models(make_rt_session, realtime_api, recorder):
    from openai.types.realtime import ResponseAudioDeltaEvent, ResponseDoneEvent

    realtime_api.responses.push(RealtimeReply.say("Hi.", audio_ms=300))
    session = make_rt_session()
    seen: list[object] = []
    done: list[object] = []
    session.on("server_event", seen.append)
    session.on("server_event:response.done", done.append)
    await session.start()
    session.push_text("hello")
    await recorder.wait_for("response_generated", timeout=10)
    sent_types = [e["type"] for e in realtime_api.sent]
    assert [e.type for e in seen] == sent_types
    assert any(isinstance(e, ResponseAudioDeltaEvent) for e in seen)
    assert len(done) == 1 and isinstance(done[0], ResponseDoneEvent) and done[0].response.status == "completed"


async def test_local_turn_detection_commits_and_asks_for_the_response_itself(make_rt_session, realtime_api,
                                                                            recorder, speech):
    realtime_api.transcripts.push("Tell me a joke.")
    realtime_api.responses.push(RealtimeReply.say("Why did the chicken cross the road?", audio_ms=800))
    session = make_rt_session(turn_detection="local")
    await session.start()
    await session.transport.play(speech.samples("Tell me a joke.", rate=24000), 24000, realtime=False,
                                 tail_silence_ms=700)
    generated = await recorder.wait_for("response_generated", timeout=15)
    assert generated.text == "Why did the chicken cross the road?"
    assert realtime_api.received[0]["session"]["audio"]["input"]["turn_detection"] is None
    client = realtime_api.types()
    assert client.index("input_audio_buffer.commit") < client.index("response.create")
    assert not [e for e in realtime_api.sent if e["type"] == "input_audio_buffer.speech_started"]
    types = recorder.types()
    positions = [index(types, t) for t in ("vad_speech_start", "vad_speech_end", "speech_created", "stt_result",
                                           "turn_ended", "response_generated", "metrics_collected")]
    assert positions == sorted(positions), types
    m = recorder.first("metrics_collected").metrics
    assert m.end_of_utterance_delay_ms is not None and m.end_of_utterance_delay_ms >= 100
    assert m.end_to_end_ms is not None and m.end_to_end_ms > m.end_of_utterance_delay_ms
