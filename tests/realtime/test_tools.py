"""Function tools through the realtime protocol: same executor, RunContext and tool events."""
from __future__ import annotations

import asyncio
import json

from tests.doubles.openai_realtime_server import RealtimeReply
from tests.runtime.helpers import DictToolExecutor


async def test_a_tool_call_round_trips(make_rt_session, realtime_api, recorder):
    tools = DictToolExecutor({"get_weather": lambda city: {"city": city, "sky": "sunny"}})
    realtime_api.responses.push(RealtimeReply.tool("get_weather", {"city": "Paris"}, text="Let me check."),
                                RealtimeReply.say("It is sunny in Paris.", audio_ms=600))
    session = make_rt_session(tools=tools)
    await session.start()
    handle = session.push_text("What's the weather in Paris?")
    await asyncio.wait_for(handle.wait_for_playout(), 15)

    # the session told the model about the tool, in the realtime (flat) shape
    schema = realtime_api.received[0]["session"]["tools"]
    assert schema == [{"type": "function", "name": "get_weather", "description": "get_weather (test tool)",
                       "parameters": {"type": "object", "properties": {}}}]
    # the tool ran once, with the model's arguments and a RunContext-able invocation
    [(call, inv)] = tools.calls
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert inv.session is session and inv.speech_handle is handle and inv.session_id == session.id
    assert inv.agent_id == "rt-agent"
    # its result went back as a function_call_output item, then a new response was asked for
    outputs = realtime_api.of("conversation.item.create")
    out = [e["item"] for e in outputs if e["item"]["type"] == "function_call_output"]
    assert out == [{"type": "function_call_output", "call_id": call.call_id,
                    "output": json.dumps({"city": "Paris", "sky": "sunny"})}]
    sent = [e for e in realtime_api.received if e["type"] in ("response.create", "conversation.item.create")]
    assert [(e["type"], e.get("item", {}).get("type")) for e in sent] == [
        ("conversation.item.create", "message"), ("response.create", None),
        ("conversation.item.create", "function_call_output"), ("response.create", None)]
    assert [r.get("metadata", {}).get("speech_id") for r in realtime_api.requests] == [handle.id, handle.id]
    # the same events as the cascaded pipeline, in order
    types = recorder.types()
    assert types.index("tool_called") < types.index("tool_completed") < types.index("response_generated")
    called, completed = recorder.first("tool_called"), recorder.first("tool_completed")
    assert (called.call_id, called.name, called.speech_id) == (call.call_id, "get_weather", handle.id)
    assert completed.output == json.dumps({"city": "Paris", "sky": "sunny"})
    generated = recorder.first("response_generated")
    assert generated.tool_steps == 1
    assert generated.text == "Let me check. It is sunny in Paris."
    assert [i["role"] for i in session.history] == ["user", "assistant", "tool", "assistant"]
    m = recorder.first("metrics_collected").metrics
    assert (m.llm_calls, m.tool_calls) == (2, 1)


async def test_a_failing_tool_is_a_tool_error_and_the_model_hears_it(make_rt_session, realtime_api, recorder):
    def broken(**_: object) -> str:
        raise RuntimeError("the weather service is down")

    realtime_api.responses.push(RealtimeReply.tool("get_weather", {}),
                                RealtimeReply.say("Sorry, I could not check.", audio_ms=300))
    session = make_rt_session(tools=DictToolExecutor({"get_weather": broken}))
    await session.start()
    handle = session.push_text("weather?")
    await asyncio.wait_for(handle.wait_for_playout(), 15)
    err = recorder.first("tool_error")
    assert err.error == "the weather service is down" and err.error_kind == "exception"
    [item] = [e["item"] for e in realtime_api.of("conversation.item.create") if e["item"]["type"] == "function_call_output"]
    assert item["output"] == "the weather service is down"
    assert recorder.first("response_generated").text == "Sorry, I could not check."


async def test_tool_steps_stop_at_max_tool_steps(make_rt_session, realtime_api, recorder):
    realtime_api.responses.push(RealtimeReply.tool("ping", {}), RealtimeReply.tool("ping", {}),
                                RealtimeReply.say("Done.", audio_ms=200))
    session = make_rt_session(tools=DictToolExecutor({"ping": lambda: "pong"}), turn={"max_tool_steps": 2})
    await session.start()
    handle = session.push_text("ping twice")
    await asyncio.wait_for(handle.wait_for_playout(), 15)
    assert [r.get("tool_choice") for r in realtime_api.requests] == [None, None, "none"]
    assert recorder.first("response_generated").tool_steps == 2


async def test_a_tool_can_end_the_session_through_its_invocation(make_rt_session, realtime_api, recorder):
    async def hang_up(**_: object) -> str:
        return "bye"

    tools = DictToolExecutor({"hang_up": hang_up})
    realtime_api.responses.push(RealtimeReply.tool("hang_up", {}), RealtimeReply.say("Goodbye.", audio_ms=200))
    session = make_rt_session(tools=tools)
    await session.start()
    handle = session.push_text("bye")
    await asyncio.wait_for(handle.wait_for_playout(), 15)
    (_, inv), = tools.calls
    inv.session.end("tool_hang_up")
    assert await asyncio.wait_for(session.wait_closed(), 10) == "tool_hang_up"
