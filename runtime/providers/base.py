"""Provider interfaces (LLM, STT, TTS) and the one error type they raise."""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from runtime.tool_types import ToolCall


class ProviderError(Exception):
    """A provider failed. `kind`: timeout | status | connection | garbage | config | unknown."""

    def __init__(self, source: str, message: str, *, kind: str = "unknown", retryable: bool = False,
                 attempt: int = 0) -> None:
        super().__init__(message)
        self.source = source
        self.kind = kind
        self.retryable = retryable
        self.attempt = attempt


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(slots=True)
class LLMDelta:
    """One item of a streamed chat completion."""

    kind: Literal["text", "tool_calls", "usage"]
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None


class LLM(Protocol):
    model: str

    def chat(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
             tool_choice: str | None = None) -> AsyncIterator[LLMDelta]: ...


@dataclass(slots=True)
class Transcript:
    text: str
    language: str | None = None


class STT(Protocol):
    async def transcribe(self, pcm: np.ndarray, sample_rate: int) -> Transcript: ...


class TTS(Protocol):
    sample_rate: int

    def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        """int16 mono chunks at `sample_rate`, as they arrive."""
        ...
