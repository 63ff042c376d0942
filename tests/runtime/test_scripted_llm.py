"""The scripted LLM: rule order, tool calls with arguments from the match, the reply to the
tool's result, the fallback, token-by-token streaming and usage — alone and in a session."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from runtime.provider_configs import parse_provider_config
from runtime.tool_types import ToolCall, ToolInvocation, ToolResult
from runtime import AgentSession, SessionOptions
from runtime.providers import ProviderError, ScriptedLLM, ScriptRule, build_llm
from runtime.providers.base import LLMDelta
from runtime.transports import LocalTransport
from tests.runtime.helpers import Recorder

WEATHER_TOOL = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
WEATHER = ScriptRule(pattern=r"weather in (?P<city>[a-z ]+?)\??$", tool="get_weather",
                     arguments={"city": "{city!t}"}, reply="Here you go: {result} ({city!t})")


async def collect(llm: ScriptedLLM, messages: list[dict[str, Any]], **kw: Any) -> list[LLMDelta]:
    return [d async for d in llm.chat(messages, **kw)]


def text_of(deltas: list[LLMDelta]) -> str:
    return "".join(d.text for d in deltas if d.kind == "text")


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


async def test_the_first_matching_rule_wins_in_order() -> None:
    llm = ScriptedLLM(rules=[ScriptRule(keywords=["hello"], reply="first"),
                             ScriptRule(keywords=["hello", "there"], reply="second"),
                             ScriptRule(pattern=r"where$", reply="third")], fallback="none")
    assert text_of(await collect(llm, user("Hello there"))) == "first"
    assert text_of(await collect(llm, user("over there"))) == "second"
    assert text_of(await collect(llm, user("nowhere"))) == "third"
    assert text_of(await collect(llm, user("there, somewhere"))) == "second"  # rule 2 comes before the pattern
    assert text_of(await collect(llm, user("thereabouts"))) == "none"  # keywords match whole words only


async def test_keywords_ignore_case_and_match_phrases() -> None:
    llm = ScriptedLLM(rules=[ScriptRule(keywords=["thank you"], reply="You're welcome!")], fallback="?")
    assert text_of(await collect(llm, user("Well, THANK YOU."))) == "You're welcome!"
    assert text_of(await collect(llm, user("thankyou"))) == "?"


async def test_no_rule_matches_gives_the_fallback() -> None:
    llm = ScriptedLLM(rules=[ScriptRule(keywords=["weather"], reply="sunny")], fallback="I only know the weather.")
    deltas = await collect(llm, user("Tell me a joke"))
    assert text_of(deltas) == "I only know the weather."


async def test_a_reply_streams_token_by_token_and_counts_usage() -> None:
    llm = ScriptedLLM(rules=[ScriptRule(keywords=["hi"], reply="Hello there, how can I help?")])
    deltas = await collect(llm, user("hi"))
    texts = [d.text for d in deltas if d.kind == "text"]
    assert texts == ["Hello", " there,", " how", " can", " I", " help?"]
    usage = [d.usage for d in deltas if d.kind == "usage"]
    assert deltas[-1].kind == "usage" and len(usage) == 1 and usage[0] is not None
    assert usage[0].completion_tokens == 8  # Hello there , how can I help ?
    assert usage[0].prompt_tokens == 4  # Be brief . hi
    assert usage[0].total_tokens == usage[0].prompt_tokens + usage[0].completion_tokens


async def test_tokens_are_paced_by_token_delay() -> None:
    llm = ScriptedLLM(rules=[ScriptRule(keywords=["hi"], reply="one two three four")], token_delay_ms=30)
    loop = asyncio.get_running_loop()
    stamps: list[float] = []
    async for d in llm.chat(user("hi")):
        if d.kind == "text":
            stamps.append(loop.time())
    assert len(stamps) == 4
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert min(gaps) >= 0.025  # asyncio.sleep never wakes early; an upper bound would be a timing assertion


async def test_a_tool_rule_calls_the_tool_with_arguments_from_named_groups() -> None:
    llm = ScriptedLLM(rules=[WEATHER])
    deltas = await collect(llm, user("What's the weather in new york?"), tools=WEATHER_TOOL)
    calls = [c for d in deltas if d.kind == "tool_calls" for c in d.tool_calls]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "New York"}
    assert text_of(deltas) == ""


async def test_after_the_tool_the_reply_template_uses_the_result_and_the_groups() -> None:
    llm = ScriptedLLM(rules=[WEATHER])
    messages = user("weather in paris")
    call = [c for d in await collect(llm, messages, tools=WEATHER_TOOL) if d.kind == "tool_calls" for c in d.tool_calls][0]
    messages += [{"role": "assistant", "content": None, "tool_calls": [
                     {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}]},
                 {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 21°C"}]
    deltas = await collect(llm, messages, tools=WEATHER_TOOL)
    assert not [d for d in deltas if d.kind == "tool_calls"]
    assert text_of(deltas) == "Here you go: sunny, 21°C (Paris)"


async def test_a_failed_tool_gets_the_error_reply() -> None:
    rule = ScriptRule(pattern=r"weather in (?P<city>\w+)", tool="get_weather", reply="{result}",
                      error_reply="No weather for {city} today.")
    llm = ScriptedLLM(rules=[rule])
    call = [c for d in await collect(llm, user("weather in Oslo"), tools=WEATHER_TOOL) if d.kind == "tool_calls"
            for c in d.tool_calls][0]
    messages = user("weather in Oslo") + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": call.call_id, "type": "function",
                                                                "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": call.call_id, "content": "Error from tool 'get_weather': service down"}]
    assert text_of(await collect(llm, messages, tools=WEATHER_TOOL)) == "No weather for Oslo today."


async def test_a_tool_rule_for_a_tool_the_agent_lacks_is_a_config_error() -> None:
    llm = ScriptedLLM(rules=[WEATHER])
    with pytest.raises(ProviderError) as err:
        await collect(llm, user("weather in paris"), tools=[])
    assert err.value.kind == "config" and "get_weather" in str(err.value)


async def test_when_tools_are_refused_a_tool_rule_falls_back() -> None:
    llm = ScriptedLLM(rules=[WEATHER], fallback="No more tools.")
    deltas = await collect(llm, user("weather in paris"), tools=WEATHER_TOOL, tool_choice="none")
    assert text_of(deltas) == "No more tools." and not [d for d in deltas if d.kind == "tool_calls"]


class WeatherTools:
    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    def schemas(self) -> list[dict[str, Any]]:
        return WEATHER_TOOL

    async def execute(self, call: ToolCall, invocation: ToolInvocation) -> ToolResult:
        self.calls.append(call)
        city = json.loads(call.arguments)["city"]
        return ToolResult(call.call_id, call.name, f"It's sunny in {city}.")


async def test_in_a_session_the_tool_runs_and_the_reply_is_marked_scripted() -> None:
    cfg = parse_provider_config("llm", {"provider": "scripted", "rules": [
        {"pattern": r"weather in (?P<city>[a-z]+)", "tool": "get_weather", "arguments": {"city": "{city!t}"},
         "reply": "{result}"}]})
    rec, tools = Recorder(), WeatherTools()
    session = AgentSession(options=SessionOptions(), llm=build_llm(cfg), tools=tools, sink=rec,
                           transport=LocalTransport())
    await session.start()
    try:
        handle = session.push_text("What's the weather in Paris?")
        assert handle is not None
        await asyncio.wait_for(handle.wait_for_playout(), 10)
    finally:
        await session.stop()
    assert [json.loads(c.arguments) for c in tools.calls] == [{"city": "Paris"}]
    assert rec.first("tool_called").name == "get_weather"
    assert rec.first("tool_completed").output == "It's sunny in Paris."
    reply = rec.first("response_generated")
    assert reply.text == "It's sunny in Paris." and reply.scripted and reply.model == "scripted"
    metrics = rec.first("metrics_collected").metrics
    assert metrics.llm_calls == 2 and metrics.tool_calls == 1 and metrics.completion_tokens > 0


async def test_a_said_text_is_not_marked_scripted() -> None:
    rec = Recorder()
    session = AgentSession(options=SessionOptions(), llm=ScriptedLLM(), sink=rec, transport=LocalTransport())
    await session.start()
    try:
        await asyncio.wait_for(session.say("Welcome!").wait_for_playout(), 10)
    finally:
        await session.stop()
    reply = rec.first("response_generated")
    assert reply.text == "Welcome!" and not reply.scripted
