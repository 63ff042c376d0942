"""OpenAI providers: chat completions, transcriptions, speech, over the REST API as the
official SDK speaks it, through one shared aiohttp pool per loop (`openai_http`, which
says why not the SDK's own client).

`base_url` makes any OpenAI-compatible server work. Inside the control plane an `Endpoint`
carries the base URL and key the Django side resolved (and checked against where the key
may go); the runtime then reads no environment. Used alone (benches, runtime tests), a
config's `api_key_env` and OPENAI_BASE_URL / OPENAI_API_KEY apply, as in the SDK.
Transient failures (connection, timeout, 408/409/429/5xx) are retried with backoff
before any output has been produced; a timeout bounds every read, so a stalled server
cannot hang a session.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import numpy as np

from runtime.provider_configs import Endpoint
from runtime.tool_types import ToolCall

from ..audio import wav_bytes
from .base import LLMDelta, ProviderError, Transcript, Usage
from .openai_http import OpenAIHTTP, classify, shared_client, sse_json

T = TypeVar("T")
SPEECH_RATE = 24_000
# The SDK reads OPENAI_API_KEY when given no key; an explicit placeholder keeps the server's
# key away from an endpoint that was resolved without one (what local servers expect anyway).
NO_API_KEY = "no-key"


@dataclass(frozen=True, slots=True)
class ClientOptions:
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 30.0
    max_retries: int = 2
    endpoint: Endpoint | None = None  # resolved by the control plane; overrides the two above


def preload() -> None:
    """Import what the first request would import on a live call's event loop: aiohttp (the
    providers' HTTP client) and the openai SDK (realtime sessions), with anyio's asyncio
    backend and the SDK's lazily loaded resources. A worker calls this at start: imported on
    first use they took the event loop for about a second in the middle of live calls
    (twenty callers: the first reply reached its caller with gaps of silence)."""
    import anyio._backends._asyncio  # noqa: F401 - anyio loads its backend on first use
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=NO_API_KEY, base_url="http://127.0.0.1:9/", max_retries=0)  # never sent to
    _ = client.chat.completions, client.audio.transcriptions, client.audio.speech  # their modules load here


def _client(opts: ClientOptions, source: str) -> OpenAIHTTP:
    """The loop's shared client (one connection pool) for these settings."""
    base_url, api_key = resolved_key(opts.endpoint, opts.base_url, opts.api_key_env, source)
    return shared_client(base_url, api_key, opts.timeout_s, source)


def pinned_auth(endpoint: Endpoint | None, api_key: str | None) -> dict[str, str] | None:
    """For a resolved endpoint, the Authorization header it was resolved with: an explicit one
    makes the SDK drop an ambient `Authorization` from OPENAI_CUSTOM_HEADERS, which would
    otherwise go to whatever base URL the config names."""
    if endpoint is None or api_key is None:
        return None
    return {"Authorization": f"Bearer {api_key}"}


def resolved_key(endpoint: Endpoint | None, base_url: str | None, api_key_env: str | None,
                 source: str) -> tuple[str | None, str | None]:
    """(base_url, api_key) to build a client with; raises the endpoint's refusal first."""
    if endpoint is not None:
        if endpoint.refused:
            raise ProviderError(source, endpoint.refused, kind="config")
        return endpoint.base_url, endpoint.api_key or NO_API_KEY
    api_key: str | None = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise ProviderError(source, f"environment variable {api_key_env} is not set", kind="config")
    return base_url, api_key


async def _retrying(source: str, opts: ClientOptions, fn: Callable[[], Awaitable[T]]) -> T:
    attempt = 0
    while True:
        try:
            return await fn()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - classified below
            err = classify(source, exc)
            err.attempt = attempt + 1
            if not err.retryable or attempt >= opts.max_retries:
                raise err from None
            await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))
            attempt += 1


class OpenAILLM:
    def __init__(self, *, model: str = "gpt-4o-mini", temperature: float | None = 0.7,
                 max_tokens: int | None = None, parallel_tool_calls: bool = True,
                 client: ClientOptions = ClientOptions()) -> None:
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.parallel_tool_calls = parallel_tool_calls
        self.opts = client

    async def chat(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                   tool_choice: str | None = None) -> AsyncIterator[LLMDelta]:
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True,
                                  "stream_options": {"include_usage": True}}
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens  # what OpenAI-compatible servers understand
        if tools:
            kwargs["tools"] = tools
            kwargs["parallel_tool_calls"] = self.parallel_tool_calls
            if tool_choice:
                kwargs["tool_choice"] = tool_choice

        async def open_stream() -> Any:
            return await _client(self.opts, "llm").post("llm", "/chat/completions", json_body=kwargs)

        response = await _retrying("llm", self.opts, open_stream)
        calls: dict[int, dict[str, str]] = {}
        try:
            async for chunk in sse_json("llm", response):
                u = chunk.get("usage")
                if u is not None:
                    yield LLMDelta("usage", usage=Usage(u.get("prompt_tokens") or 0, u.get("completion_tokens") or 0,
                                                        u.get("total_tokens") or 0))
                for choice in chunk.get("choices") or ():
                    d = choice.get("delta")
                    if d is None:
                        continue
                    if d.get("content"):
                        yield LLMDelta("text", text=d["content"])
                    for tc in d.get("tool_calls") or ():
                        acc = calls.setdefault(tc["index"], {"id": "", "name": "", "arguments": ""})
                        if tc.get("id"):
                            acc["id"] = tc["id"]
                        function = tc.get("function")
                        if function is not None:
                            if function.get("name"):
                                acc["name"] += function["name"]
                            if function.get("arguments"):
                                acc["arguments"] += function["arguments"]
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001
            raise classify("llm", exc) from None
        finally:
            response.release()  # a stream read to its end goes back to the pool; a cut one is closed
        if calls:
            yield LLMDelta("tool_calls", tool_calls=[
                ToolCall(call_id=c["id"] or f"call_{i}", name=c["name"], arguments=c["arguments"] or "{}")
                for i, c in sorted(calls.items())])


class OpenAISTT:
    def __init__(self, *, model: str = "whisper-1", language: str | None = None, prompt: str | None = None,
                 client: ClientOptions = ClientOptions()) -> None:
        self.model = model
        self.language = language
        self.prompt = prompt
        self.opts = client

    async def transcribe(self, pcm: np.ndarray, sample_rate: int) -> Transcript:
        def form() -> aiohttp.FormData:  # a FormData is consumed by its request: one per attempt
            fields = aiohttp.FormData()
            fields.add_field("model", self.model)
            if self.language:
                fields.add_field("language", self.language)
            if self.prompt:
                fields.add_field("prompt", self.prompt)
            fields.add_field("file", data, filename="audio.wav", content_type="audio/wav")
            return fields

        async def call() -> Any:
            response = await _client(self.opts, "stt").post("stt", "/audio/transcriptions", form=form())
            try:
                return json.loads(await response.read())
            finally:
                response.release()

        data = wav_bytes(pcm, sample_rate)
        res = await _retrying("stt", self.opts, call)
        text = res.get("text") if isinstance(res, dict) else None
        if not isinstance(text, str):
            raise ProviderError("stt", f"malformed transcription response: {str(res)[:80]!r}", kind="garbage")
        return Transcript(text.strip(), self.language)


class OpenAITTS:
    sample_rate = SPEECH_RATE

    def __init__(self, *, model: str = "gpt-4o-mini-tts", voice: str = "alloy", speed: float = 1.0,
                 instructions: str | None = None, client: ClientOptions = ClientOptions(),
                 chunk_bytes: int = 4800) -> None:
        self.model = model
        self.voice = voice
        self.speed = speed
        self.instructions = instructions
        self.opts = client
        self.chunk_bytes = chunk_bytes

    async def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        kwargs: dict[str, Any] = {"model": self.model, "voice": self.voice, "input": text,
                                  "response_format": "pcm"}
        if self.speed != 1.0:
            kwargs["speed"] = self.speed
        if self.instructions:
            kwargs["instructions"] = self.instructions

        async def open_response() -> Any:
            return await _client(self.opts, "tts").post("tts", "/audio/speech", json_body=kwargs)

        response = await _retrying("tts", self.opts, open_response)
        carry = b""
        try:
            async for data in response.content.iter_chunked(self.chunk_bytes):
                if carry:
                    data, carry = carry + data, b""
                if len(data) % 2:  # a sample split across reads
                    data, carry = data[:-1], data[-1:]
                if data:
                    yield np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001
            raise classify("tts", exc) from None
        finally:
            response.release()


def now_ms() -> float:
    return time.perf_counter() * 1000.0
