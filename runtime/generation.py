"""One speech from start to finish: LLM (with tool steps) → sentences → TTS → playout.

A reply stage gets the playout, an emit function and a spawner (`ReplyStage`), and reaches
its session for the rest through `ReplyHooks`. Cancelling the speech (`SpeechHandle.cancel`)
stops the playout at once and cancels the TTS requests; the session cancels the reply task
(the LLM stream and the tools in flight) and records what was heard.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from runtime.tool_types import ToolCall, ToolInvocation

from . import events as ev
from .interfaces import Emit, Spawn, ToolExecutor
from .pause import PauseGate
from .playout import Playout, PlayoutJob, cut_on_cancel
from .providers.base import LLM, TTS, ProviderError
from .segmenter import SentenceSegmenter
from .speech import SpeechHandle
from .tool_calls import record_tool_result, run_tool

_DONE = object()
# Sentences synthesized at once: the next sentence's audio is on its way while the current
# one plays, so slow TTS does not leave gaps between sentences.
TTS_LOOKAHEAD = 2


class _Synthesis:
    """One sentence's TTS request; its audio chunks wait here until their turn to play."""

    __slots__ = ("text", "chunks", "ttfb_ms", "task")

    def __init__(self, text: str) -> None:
        self.text = text
        self.chunks: asyncio.Queue[Any] = asyncio.Queue()
        self.ttfb_ms: float | None = None
        self.task: asyncio.Task[None] | None = None


@runtime_checkable
class ReplyHooks(Protocol):
    """What a reply needs from its session besides the playout, emit and spawn."""

    def set_agent_state(self, state: ev.AgentState) -> None: ...

    def chat_context(self, extra_instructions: str | None) -> list[dict[str, Any]]:
        """The LLM's messages: instructions, the recent history, the latest video frame."""
        ...

    def add_item(self, item: dict[str, Any], *, interrupted: bool = False) -> None: ...

    def tool_invocation(self, speech: SpeechHandle) -> ToolInvocation: ...

    async def send_text(self, text: str) -> None:
        """A text agent's reply, to the transport."""
        ...

    def publish_transcript(self, text: str, *, speaker: str) -> None: ...

    def report_error(self, source: str, exc: BaseException) -> None: ...

    def report_metrics(self, metrics: ev.TurnMetrics) -> None: ...


@dataclass(frozen=True, slots=True)
class ReplyStage:
    """A session's cascaded reply side, built once; `ReplyGenerator(stage, handle)` runs one speech."""

    llm: LLM
    tts: TTS | None
    tools: ToolExecutor | None
    max_tool_steps: int
    playout: Playout | None  # None for a text agent
    pause_gate: PauseGate
    emit: Emit
    spawn: Spawn
    hooks: ReplyHooks


class ReplyGenerator:
    def __init__(self, stage: ReplyStage, handle: SpeechHandle) -> None:
        self.stage = stage
        self.hooks = stage.hooks
        self.emit = stage.emit
        self.h = handle
        self.t = handle.timer
        self._segmenter = SentenceSegmenter()
        self._sentences: asyncio.Queue[Any] = asyncio.Queue()
        self._tts_task: asyncio.Task[None] | None = None
        self._tts_slots = asyncio.Semaphore(TTS_LOOKAHEAD)
        self._synths: list[_Synthesis] = []
        self._job: PlayoutJob | None = None

    async def run(self) -> None:
        st, h = self.stage, self.h
        self.hooks.set_agent_state("thinking")
        if st.playout is not None and st.tts is not None:
            self._job = st.playout.begin(h.id)
            self._job.drained = asyncio.get_running_loop().create_future()
            cut_on_cancel(st.playout, self._job, h)
            self._tts_task = st.spawn(self._tts_worker(), f"tts-{h.id}")
            h.on_cancel(self._cancel_tts)
        elif st.tts is None:
            h.on_cancel(self._text_heard)
        try:
            if h.source == "say":
                assert h.text is not None
                self._on_text(h.text)
                h.generated_text = h.text
            else:
                h.generated_text = await self._llm_loop()
            for sentence in self._segmenter.flush():
                self._sentence(sentence)
            self._sentences.put_nowait(_DONE)
            if self._tts_task is not None:
                await self._tts_task
                assert st.playout is not None and self._job is not None
                st.playout.end_input()
                await self._job.drained
                h.played_text = self._job.played_text() or (h.generated_text if not self._job.segments else "")
            else:
                h.played_text = h.generated_text
                if h.generated_text:
                    await st.pause_gate.wait_open()  # paused: the text reply is held, not lost
                    self.t.first_audio = self.t.first_audio or time.perf_counter()
                    await self.hooks.send_text(h.generated_text)
        except asyncio.CancelledError:
            await self._cancel_children()
            raise
        except Exception as exc:  # noqa: BLE001 - a provider failure or a bug in one reply must not end the session
            await self._cancel_children()
            h.error = str(exc) if isinstance(exc, ProviderError) else f"{type(exc).__name__}: {exc}"
            self.hooks.report_error("session", exc)
            self._finish(errored=True)
            return
        self._finish(errored=False)

    def _finish(self, *, errored: bool) -> None:
        st, h = self.stage, self.h
        text = h.played_text or ("" if errored else h.generated_text)
        if h.add_to_history and text:
            self.hooks.add_item({"role": "assistant", "content": text})
        if text and st.tts is not None:
            self.hooks.publish_transcript(text, speaker="agent")
        if not errored:
            by_llm = h.source != "say"
            self.emit(ev.ResponseGenerated(speech_id=h.id, text=text, tool_steps=h.tool_steps,
                                           model=st.llm.model if by_llm else "",
                                           # a provider may declare itself scripted: the dashboard marks its replies
                                           scripted=by_llm and bool(getattr(st.llm, "scripted", False))))
        if h.user_initiated or h.timer.llm_calls:
            self.hooks.report_metrics(self.t.metrics(h.id))

    # -- cancellation (subscribed to the speech handle) ---------------------------------------
    def _cancel_tts(self, _reason: str) -> None:
        for t in [self._tts_task, *(syn.task for syn in self._synths)]:
            if t is not None and not t.done():
                t.cancel()

    def _text_heard(self, _reason: str) -> None:
        self.h.played_text = self.h.generated_text  # text agents: what was sent is what was "heard"

    async def _cancel_children(self) -> None:
        tasks = [t for t in [self._tts_task, *(syn.task for syn in self._synths)] if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)

    # -- LLM with tool steps --------------------------------------------------------------
    async def _llm_loop(self) -> str:
        st, h, t = self.stage, self.h, self.t
        schemas = st.tools.schemas() if st.tools is not None else []
        max_steps = st.max_tool_steps
        spoken = ""
        step = 0
        while True:
            last = step >= max_steps
            start = time.perf_counter()
            t.llm_calls += 1
            text = ""
            calls: list[ToolCall] = []
            async for d in st.llm.chat(self.hooks.chat_context(h.instructions), tools=schemas or None,
                                      tool_choice="none" if (schemas and last) else None):
                if d.kind == "text":
                    if t.llm_ttft_ms is None:
                        t.llm_ttft_ms = round((time.perf_counter() - start) * 1000, 3)
                    text += d.text
                    if self._on_text(d.text) and not t.critical_done:
                        t.critical_provider_ms += (time.perf_counter() - start) * 1000
                        t.critical_done = True
                elif d.kind == "tool_calls":
                    if t.llm_ttft_ms is None:
                        t.llm_ttft_ms = round((time.perf_counter() - start) * 1000, 3)
                    calls.extend(d.tool_calls)
                elif d.kind == "usage" and d.usage is not None:
                    t.prompt_tokens += d.usage.prompt_tokens
                    t.completion_tokens += d.usage.completion_tokens
                    t.total_tokens += d.usage.total_tokens
            took = (time.perf_counter() - start) * 1000
            t.llm_ms += took
            spoken += text
            if not calls or last:
                if not t.critical_done:
                    t.critical_provider_ms += took  # the first sentence only came with the flush
                return spoken.strip()
            if not t.critical_done:
                t.critical_provider_ms += took
            step += 1
            h.tool_steps = step
            await self._run_tools(text, calls)

    async def _run_tools(self, text: str, calls: list[ToolCall]) -> None:
        h, t, hooks = self.h, self.t, self.hooks
        hooks.add_item({"role": "assistant", "content": text or None, "tool_calls": [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls]})
        for c in calls:
            self.emit(ev.ToolCalled(call_id=c.call_id, name=c.name, arguments=c.arguments, speech_id=h.id))
        t.tool_calls += len(calls)
        inv = hooks.tool_invocation(h)
        start = time.perf_counter()
        results = await asyncio.gather(*(run_tool(self.stage.tools, c, inv) for c in calls))
        if not t.critical_done:
            t.critical_provider_ms += (time.perf_counter() - start) * 1000
        for r in results:
            record_tool_result(r, emit=self.emit, add_item=hooks.add_item)

    # -- sentences → TTS → playout --------------------------------------------------------
    def _on_text(self, delta: str) -> bool:
        """Feeds the segmenter; True when a sentence went to TTS."""
        sentences = self._segmenter.push(delta)
        for sentence in sentences:
            self._sentence(sentence)
        return bool(sentences)

    def _sentence(self, text: str) -> None:
        if self._tts_task is None:
            return
        syn = _Synthesis(text)
        syn.task = self.stage.spawn(self._synthesize(syn), f"tts-req-{self.h.id}")
        self._synths.append(syn)
        self._sentences.put_nowait(syn)

    async def _synthesize(self, syn: _Synthesis) -> None:
        tts = self.stage.tts
        assert tts is not None
        try:
            async with self._tts_slots:
                start = time.perf_counter()
                async for pcm in tts.synthesize(syn.text):
                    if syn.ttfb_ms is None:
                        syn.ttfb_ms = (time.perf_counter() - start) * 1000
                    syn.chunks.put_nowait(pcm)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one sentence's TTS failing leaves the others
            self.hooks.report_error("tts", exc)
        finally:
            syn.chunks.put_nowait(_DONE)

    async def _tts_worker(self) -> None:
        """Plays the sentences' audio in order, each as soon as its first bytes arrive."""
        h, t = self.h, self.t
        tts, playout = self.stage.tts, self.stage.playout
        assert tts is not None and playout is not None
        while (syn := await self._sentences.get()) is not _DONE:
            seg = playout.begin_segment(syn.text)
            nbytes = 0
            while (pcm := await syn.chunks.get()) is not _DONE:
                if t.tts_ttfb_ms is None and syn.ttfb_ms is not None:
                    t.tts_ttfb_ms = round(syn.ttfb_ms, 3)
                    t.critical_provider_ms += syn.ttfb_ms
                nbytes += pcm.size * 2
                playout.push(seg, pcm)
            seg.complete = True
            if seg.samples_total == 0 and self._job is not None and seg in self._job.segments:
                self._job.segments.remove(seg)  # nothing to hear: not part of the played text
            t.tts_characters += len(syn.text)
            self.emit(ev.TtsAudio(speech_id=h.id, text=syn.text, duration_ms=round(nbytes / 2 / tts.sample_rate * 1000, 1),
                                  ttfb_ms=round(syn.ttfb_ms or 0.0, 3), bytes=nbytes))
