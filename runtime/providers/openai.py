"""OpenAI providers through the official SDK: chat completions, transcriptions, speech.

`base_url` makes any OpenAI-compatible server work. Inside the control plane an `Endpoint`
carries the base URL and key the Django side resolved (and checked against where the key
may go); the runtime then reads no environment. Used alone (benches, runtime tests), a
config's `api_key_env` and the SDK's OPENAI_BASE_URL / OPENAI_API_KEY apply.
Transient failures (connection, timeout, 408/409/429/5xx) are retried with backoff
before any output has been produced; a timeout bounds every read, so a stalled server
cannot hang a session.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from runtime.provider_configs import Endpoint
from runtime.tool_types import ToolCall

from ..audio import wav_bytes
from .base import LLMDelta, ProviderError, Transcript, Usage

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


# Per event loop (an httpx pool is bound to its loop; ids of dead loops get reused).
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str | None, str | None, float], Any]]" = (
    weakref.WeakKeyDictionary())


def preload() -> None:
    """Import the openai SDK and what it imports lazily on a first request (the chat and audio
    resources behind the client's properties, anyio's asyncio backend, the HTTP transport).
    A worker calls this at start: imported on first use they took the event loop for about a
    second in the middle of live calls (twenty callers: the first reply reached its caller
    with gaps of silence while the loop was importing)."""
    import anyio._backends._asyncio  # noqa: F401 - anyio loads its backend on first use
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=NO_API_KEY, base_url="http://127.0.0.1:9/", max_retries=0)  # never sent to
    _ = client.chat.completions, client.audio.transcriptions, client.audio.speech  # their modules load here


def _client(opts: ClientOptions, source: str) -> Any:
    """One AsyncOpenAI (and its connection pool) per loop and settings, shared by sessions."""
    # imported here: the openai SDK takes about a second to import, and only OpenAI providers
    # need it (a worker imports it at start, see preload)
    from openai import AsyncOpenAI, OpenAIError

    base_url, api_key = resolved_key(opts.endpoint, opts.base_url, opts.api_key_env, source)
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (base_url or os.environ.get("OPENAI_BASE_URL"), api_key or os.environ.get("OPENAI_API_KEY"),
           opts.timeout_s)
    c = per_loop.get(key)
    if c is None:
        try:
            c = AsyncOpenAI(base_url=base_url or None, api_key=api_key,
                            default_headers=pinned_auth(opts.endpoint, api_key),
                            timeout=opts.timeout_s, max_retries=0)
        except OpenAIError as exc:
            raise ProviderError(source, str(exc), kind="config") from None
        per_loop[key] = c
    return c


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


def _classify(source: str, exc: BaseException) -> ProviderError:
    import openai  # here, not at the top: see _client

    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(source, f"timed out: {exc}", kind="timeout", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(source, f"connection failed: {exc}", kind="connection", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        return ProviderError(source, f"HTTP {code}: {exc.message}", kind="status",
                             retryable=code in (408, 409, 429) or code >= 500)
    if isinstance(exc, (json.JSONDecodeError, ValueError, TypeError, KeyError, AttributeError,
                        openai.APIResponseValidationError)):
        return ProviderError(source, f"malformed response: {exc}", kind="garbage")
    if isinstance(exc, asyncio.TimeoutError):
        return ProviderError(source, "timed out", kind="timeout", retryable=True)
    return ProviderError(source, f"{type(exc).__name__}: {exc}")


async def _retrying(source: str, opts: ClientOptions, fn: Callable[[], Awaitable[T]]) -> T:
    attempt = 0
    while True:
        try:
            return await fn()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - classified below
            err = _classify(source, exc)
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
            # The SDK's client.post (its documented way to call any endpoint) rather than
            # chat.completions.create: create walks the whole conversation through its TypedDict
            # transform on every request (~5 % of a busy worker's GIL, bench/capacity.py), and
            # these params are plain JSON already (no aliases, files or dates to convert).
            # Same client, headers, timeout and response parsing.
            from openai import AsyncStream
            from openai.types.chat import ChatCompletion, ChatCompletionChunk

            return await _client(self.opts, "llm").post("/chat/completions", body=kwargs, cast_to=ChatCompletion,
                                                        stream=True, stream_cls=AsyncStream[ChatCompletionChunk])

        stream = await _retrying("llm", self.opts, open_stream)
        calls: dict[int, dict[str, str]] = {}
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    u = chunk.usage
                    yield LLMDelta("usage", usage=Usage(u.prompt_tokens or 0, u.completion_tokens or 0,
                                                        u.total_tokens or 0))
                for choice in chunk.choices or ():
                    d = choice.delta
                    if d is None:
                        continue
                    if d.content:
                        yield LLMDelta("text", text=d.content)
                    for tc in d.tool_calls or ():
                        acc = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                        if tc.id:
                            acc["id"] = tc.id
                        if tc.function is not None:
                            if tc.function.name:
                                acc["name"] += tc.function.name
                            if tc.function.arguments:
                                acc["arguments"] += tc.function.arguments
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001
            raise _classify("llm", exc) from None
        finally:
            await _aclose(stream)
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
        data = wav_bytes(pcm, sample_rate)
        kwargs: dict[str, Any] = {"model": self.model, "file": ("audio.wav", data, "audio/wav")}
        if self.language:
            kwargs["language"] = self.language
        if self.prompt:
            kwargs["prompt"] = self.prompt

        async def call() -> Any:
            return await _client(self.opts, "stt").audio.transcriptions.create(**kwargs)

        res = await _retrying("stt", self.opts, call)
        text = getattr(res, "text", None)
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
            cm = _client(self.opts, "tts").audio.speech.with_streaming_response.create(**kwargs)
            resp = await cm.__aenter__()
            return cm, resp

        cm, resp = await _retrying("tts", self.opts, open_response)
        carry = b""
        try:
            async for data in resp.iter_bytes(self.chunk_bytes):
                if carry:
                    data, carry = carry + data, b""
                if len(data) % 2:  # a sample split across reads
                    data, carry = data[:-1], data[-1:]
                if data:
                    yield np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001
            raise _classify("tts", exc) from None
        finally:
            try:
                await cm.__aexit__(None, None, None)
            except Exception:  # noqa: BLE001 - closing a broken stream
                pass


async def _aclose(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        try:
            res = close()
            if asyncio.iscoroutine(res):
                await res
        except Exception:  # noqa: BLE001
            pass


def now_ms() -> float:
    return time.perf_counter() * 1000.0
