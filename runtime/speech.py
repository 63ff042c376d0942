"""Speech handles (one agent utterance: say / generate_reply), how one is stopped, and per-turn timing.

Interruption is one object: `SpeechHandle.cancel(reason)`. Whatever works for the speech
subscribes to it with `on_cancel` (the reply task, its TTS requests, the playout that plays
it, a realtime response) and stops itself; the session then records what was heard.
Whether a speech may be stopped at all is `can_interrupt`, the one rule for it.
"""
from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
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
    played_ms: float = 0.0  # set when the playout stops it: how much of its audio went out
    cancel_reason: str | None = None
    _done: asyncio.Future[None] | None = None
    _on_cancel: list[Callable[[str], None]] = field(default_factory=list)
    created_at: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self._done = asyncio.get_running_loop().create_future()

    def done(self) -> bool:
        return self._done is not None and self._done.done()

    @property
    def cancelled(self) -> bool:
        return self.cancel_reason is not None

    def on_cancel(self, hook: Callable[[str], None]) -> None:
        """Call `hook(reason)` when the speech is cancelled (at once if it already was)."""
        if self.cancel_reason is not None:
            hook(self.cancel_reason)
        elif not self.done():
            self._on_cancel.append(hook)

    def cancel(self, reason: str) -> bool:
        """Stop this speech: every subscriber stops its part, in the order they subscribed.
        True the first time; a finished or already cancelled speech is left as it is."""
        if self.done() or self.cancel_reason is not None:
            return False
        self.cancel_reason = reason
        self.interrupted = True
        hooks, self._on_cancel = self._on_cancel, []
        for hook in hooks:
            hook(reason)
        return True

    async def wait_for_playout(self) -> None:
        assert self._done is not None
        await asyncio.shield(self._done)

    def __await__(self):  # type: ignore[no-untyped-def]
        return self.wait_for_playout().__await__()

    def _mark_done(self) -> None:
        self._on_cancel.clear()
        if self._done is not None and not self._done.done():
            self._done.set_result(None)


INTERRUPT_REASONS = ("user_speech", "operator", "api", "session_end")


def can_interrupt(speech: SpeechHandle | None, reason: str, *, allow_interruptions: bool) -> bool:
    """The one rule: the operator, the API and the session's end may stop any speech; the
    user (speaking or typing) only a speech created interruptible, and only when the agent's
    turn config (`allow_interruptions`) lets users interrupt at all."""
    if speech is None or speech.done():
        return False
    return reason != "user_speech" or (speech.allow_interruptions and allow_interruptions)
