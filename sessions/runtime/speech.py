"""Speech handles (one agent utterance: say / generate_reply) and per-turn timing."""
from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Literal

from .events import TurnMetrics

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}"


@dataclass(slots=True)
class TurnTimer:
    """Timestamps (perf_counter seconds) and totals that become one TurnMetrics."""

    turn_id: str = ""
    last_voice: float | None = None  # user stopped speaking
    committed: float | None = None  # endpoint decision
    stt_ms: float | None = None
    stt_audio_ms: float = 0.0
    llm_ttft_ms: float | None = None
    llm_ms: float = 0.0
    tts_ttfb_ms: float | None = None
    first_audio: float | None = None
    critical_provider_ms: float = 0.0  # provider (and tool) time between commit and first audio
    critical_done: bool = False
    llm_calls: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    tts_characters: int = 0

    def metrics(self, speech_id: str) -> TurnMetrics:
        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) * 1000, 3)

        overhead = None
        if self.committed is not None and self.first_audio is not None:
            overhead = round(max(0.0, (self.first_audio - self.committed) * 1000 - self.critical_provider_ms), 3)
        return TurnMetrics(
            turn_id=self.turn_id, speech_id=speech_id,
            end_of_utterance_delay_ms=ms(self.last_voice, self.committed),
            stt_duration_ms=self.stt_ms, llm_ttft_ms=self.llm_ttft_ms,
            llm_duration_ms=round(self.llm_ms, 3) if self.llm_calls else None,
            tts_ttfb_ms=self.tts_ttfb_ms, end_to_end_ms=ms(self.last_voice, self.first_audio),
            framework_overhead_ms=overhead, llm_calls=self.llm_calls, tool_calls=self.tool_calls,
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
            total_tokens=self.total_tokens, tts_characters=self.tts_characters,
            stt_audio_ms=self.stt_audio_ms)


SpeechSource = Literal["say", "generate_reply", "tool_response"]


@dataclass(eq=False)
class SpeechHandle:
    """One agent utterance. `await handle.wait_for_playout()` returns when it was fully
    played or interrupted; `interrupted` says which."""

    source: SpeechSource
    allow_interruptions: bool = True
    text: str | None = None  # say(): the text; generate_reply: filled as generated
    instructions: str | None = None
    user_initiated: bool = False
    add_to_history: bool = True
    id: str = field(default_factory=lambda: new_id("speech"))
    timer: TurnTimer = field(default_factory=TurnTimer)
    interrupted: bool = False
    played_text: str = ""
    generated_text: str = ""
    tool_steps: int = 0
    error: str | None = None
    _done: asyncio.Future[None] | None = None
    _task: asyncio.Task[None] | None = None
    created_at: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self._done = asyncio.get_running_loop().create_future()

    def done(self) -> bool:
        return self._done is not None and self._done.done()

    async def wait_for_playout(self) -> None:
        assert self._done is not None
        await asyncio.shield(self._done)

    def __await__(self):  # type: ignore[no-untyped-def]
        return self.wait_for_playout().__await__()

    def _mark_done(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)
