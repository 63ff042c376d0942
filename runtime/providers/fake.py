"""In-process providers with no I/O, for benchmarks and the dashboard's offline mode.

They answer at once, so what a benchmark measures with them is the framework itself.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np

from runtime.tool_types import ToolCall

from .base import LLMDelta, Transcript, Usage


class FakeLLM:
    """Replies with `reply(messages)` (default: a fixed sentence), word by word."""

    model = "fake"

    def __init__(self, reply: str | Callable[[list[dict[str, Any]]], str] = "Sure. Here is my answer to that.",
                 tool_call: tuple[str, str] | None = None) -> None:
        self._reply = reply
        self._tool_call = tool_call

    async def chat(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                   tool_choice: str | None = None) -> AsyncIterator[LLMDelta]:
        if self._tool_call and tools and tool_choice != "none" and messages[-1].get("role") != "tool":
            name, args = self._tool_call
            yield LLMDelta("tool_calls", tool_calls=[ToolCall("call_fake", name, args)])
            return
        text = self._reply(messages) if callable(self._reply) else self._reply
        for word in text.split(" "):
            yield LLMDelta("text", text=word + " ")
        yield LLMDelta("usage", usage=Usage(10, len(text.split()), 10 + len(text.split())))


class FakeSTT:
    def __init__(self, text: str = "hello there") -> None:
        self.text = text

    async def transcribe(self, pcm: np.ndarray, sample_rate: int) -> Transcript:
        await asyncio.sleep(0)
        return Transcript(self.text)


class FakeTTS:
    """A quiet tone, `ms_per_char` of audio per character, in 100 ms chunks."""

    def __init__(self, *, sample_rate: int = 24_000, ms_per_char: float = 50.0) -> None:
        self.sample_rate = sample_rate
        self.ms_per_char = ms_per_char
        n = sample_rate // 10
        t = np.arange(n, dtype=np.float32) / sample_rate
        self._chunk = (np.sin(2 * np.pi * 220 * t) * 3000).astype(np.int16)

    async def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        total = int(len(text) * self.ms_per_char * self.sample_rate / 1000)
        sent = 0
        while sent < total:
            n = min(self._chunk.size, total - sent)
            yield self._chunk[:n]
            sent += n
