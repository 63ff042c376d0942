"""The OpenAI double itself, through the real SDK (other suites rely on it)."""
from __future__ import annotations

import asyncio

import pytest
from openai import AsyncOpenAI

from tests.doubles.openai_server import OpenAIDouble, Reply, tone_pcm
from tests.helpers import wait_for_async

pytestmark = pytest.mark.asyncio


async def test_streamed_tool_call_deltas_reassemble_in_the_sdk(openai_double):
    openai_double.chat.push(Reply.tools(("a", {"x": 1}), ("b", '{"y": "two"}')))
    client = AsyncOpenAI(base_url=openai_double.base_url, api_key="k", max_retries=0)
    stream = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                  stream=True, stream_options={"include_usage": True})
    args: dict[int, str] = {}
    names: dict[int, str] = {}
    usage = None
    async for chunk in stream:
        usage = chunk.usage or usage
        for c in chunk.choices:
            for tc in c.delta.tool_calls or ():
                names[tc.index] = names.get(tc.index, "") + (tc.function.name or "")
                args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "")
    assert names == {0: "a", 1: "b"} and args == {0: '{"x": 1}', 1: '{"y": "two"}'}
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_non_streaming_chat_and_callable_scripts(openai_double):
    openai_double.chat.push(lambda body: Reply.message(f"echo {body['messages'][-1]['content']}"))
    client = AsyncOpenAI(base_url=openai_double.base_url, api_key="k", max_retries=0)
    res = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
    assert res.choices[0].message.content == "echo ping"
    res = await client.chat.completions.create(model="m", messages=[])
    assert res.choices[0].message.content == openai_double.default_chat_text


async def test_speech_streams_exact_pcm_and_transcripts_default(openai_double):
    pcm = tone_pcm(0.25)
    openai_double.speech.push(Reply(pcm=pcm))
    client = AsyncOpenAI(base_url=openai_double.base_url, api_key="k", max_retries=0)
    async with client.audio.speech.with_streaming_response.create(
            model="tts", voice="alloy", input="x", response_format="pcm") as resp:
        got = b"".join([b async for b in resp.iter_bytes()])
    assert got == pcm and len(pcm) == 24000 // 4 * 2
    openai_double.default_transcript = "default words"
    t = await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF0000WAVE", "audio/wav"))
    assert t.text == "default words"


async def test_stop_releases_stalled_requests():
    api = OpenAIDouble().start()
    api.chat.push(Reply.stall(60))
    client = AsyncOpenAI(base_url=api.base_url, api_key="k", max_retries=0, timeout=30)
    call = asyncio.create_task(client.chat.completions.create(model="m", messages=[]))
    await wait_for_async(lambda: api.requests, what="the stalled request")
    await asyncio.to_thread(api.stop)
    await asyncio.wait({call}, timeout=5)  # not the 60 s stall (bench/provider_failures.py times it)
    assert call.done()
