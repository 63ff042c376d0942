"""One speech from start to finish: LLM (with tool steps) → sentences → TTS → playout.

Cancelling the task (an interruption) cancels the LLM stream, the TTS worker and the
tools in flight; the session has already cleared the playout and recorded what was heard.
"""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from agents.tools.calls import ToolCall, ToolInvocation

from . import events as ev
from .providers.base import ProviderError
from .segmenter import SentenceSegmenter
from .speech import SpeechHandle
from .tool_calls import record_tool_result, run_tool

if TYPE_CHECKING:
    from .session import AgentSession

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


class ReplyGenerator:
    def __init__(self, session: "AgentSession", handle: SpeechHandle) -> None:
        self.s = session
        self.h = handle
        self.t = handle.timer
        self._segmenter = SentenceSegmenter()
        self._sentences: asyncio.Queue[Any] = asyncio.Queue()
        self._tts_task: asyncio.Task[None] | None = None
        self._tts_slots = asyncio.Semaphore(TTS_LOOKAHEAD)
        self._synths: list[_Synthesis] = []
        self._job = None

    async def run(self) -> None:
        s, h = self.s, self.h
        s._set_agent_state("thinking")
        if s._playout is not None and s.tts is not None:
            self._job = s._playout.begin(h.id)
            self._job.drained = asyncio.get_running_loop().create_future()
            self._tts_task = asyncio.get_running_loop().create_task(self._tts_worker(), name=f"tts-{h.id}")
            s._keep(self._tts_task)
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
                assert s._playout is not None and self._job is not None
                s._playout.end_input()
                await self._job.drained
                h.played_text = self._job.played_text() or (h.generated_text if not self._job.segments else "")
            else:
                h.played_text = h.generated_text
                if h.generated_text:
                    await s.pause_gate.wait_open()  # paused: the text reply is held, not lost
                    self.t.first_audio = self.t.first_audio or time.perf_counter()
                    await s.transport.send_text(h.generated_text)
        except asyncio.CancelledError:
            await self._cancel_children()
            raise
        except ProviderError as err:
            await self._cancel_children()
            h.error = str(err)
            s.provider_error(err)
            self._finish(errored=True)
            return
        except Exception as exc:  # noqa: BLE001 - a bug in one reply must not end the session
            await self._cancel_children()
            h.error = f"{type(exc).__name__}: {exc}"
            s._error("session", h.error)
            self._finish(errored=True)
            return
        self._finish(errored=False)

    def _finish(self, *, errored: bool) -> None:
        s, h = self.s, self.h
        text = h.played_text or ("" if errored else h.generated_text)
        if h.add_to_history and text:
            s.add_item({"role": "assistant", "content": text})
        if text and s.tts is not None:
            s._spawn(s.transport.publish_transcript(text, speaker="agent", final=True), "transcript")
        if not errored:
            by_llm = h.source != "say"
            s.emit(ev.ResponseGenerated(speech_id=h.id, text=text, tool_steps=h.tool_steps,
                                        model=s.llm.model if by_llm else "",
                                        # a provider may declare itself scripted: the dashboard marks its replies
                                        scripted=by_llm and bool(getattr(s.llm, "scripted", False))))
        if h.user_initiated or h.timer.llm_calls:
            m = self.t.metrics(h.id)
            if m.end_to_end_ms is not None:
                s.audio_state.current_latency_ms = m.end_to_end_ms
            s.emit(ev.MetricsCollected(metrics=m))

    async def _cancel_children(self) -> None:
        tasks = [t for t in [self._tts_task, *(syn.task for syn in self._synths)] if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)

    # -- LLM with tool steps --------------------------------------------------------------
    def _context(self) -> list[dict[str, Any]]:
        s = self.s
        system = s.options.instructions
        if self.h.instructions:
            system = f"{system}\n\n{self.h.instructions}"
        items = s.history[-s.options.max_history:]
        while items and items[0].get("role") == "tool":  # never start mid tool exchange
            items = items[1:]
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}, *items]
        image = s.take_image()
        if image is not None:
            for i in range(len(messages) - 1, 0, -1):
                if messages[i]["role"] == "user" and isinstance(messages[i]["content"], str):
                    messages[i] = {"role": "user", "content": [
                        {"type": "text", "text": messages[i]["content"]},
                        {"type": "image_url", "image_url": {"url": image}}]}
                    break
        return messages

    async def _llm_loop(self) -> str:
        s, h, t = self.s, self.h, self.t
        schemas = s.tools.schemas() if s.tools is not None else []
        max_steps = s.options.turn.max_tool_steps
        spoken = ""
        step = 0
        while True:
            last = step >= max_steps
            start = time.perf_counter()
            t.llm_calls += 1
            text = ""
            calls: list[ToolCall] = []
            async for d in s.llm.chat(self._context(), tools=schemas or None,
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
        s, h, t = self.s, self.h, self.t
        s.add_item({"role": "assistant", "content": text or None, "tool_calls": [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls]})
        for c in calls:
            s.emit(ev.ToolCalled(call_id=c.call_id, name=c.name, arguments=c.arguments, speech_id=h.id))
        t.tool_calls += len(calls)
        inv = ToolInvocation(session=s, speech_handle=h, user_data=s.user_data, session_id=s.id,
                             agent_id=s.options.agent_id)
        start = time.perf_counter()
        results = await asyncio.gather(*(run_tool(s.tools, c, inv) for c in calls))
        if not t.critical_done:
            t.critical_provider_ms += (time.perf_counter() - start) * 1000
        for r in results:
            record_tool_result(s, r)

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
        syn.task = asyncio.get_running_loop().create_task(self._synthesize(syn), name=f"tts-req-{self.h.id}")
        self.s._keep(syn.task)
        self._synths.append(syn)
        self._sentences.put_nowait(syn)

    async def _synthesize(self, syn: _Synthesis) -> None:
        s = self.s
        assert s.tts is not None
        try:
            async with self._tts_slots:
                start = time.perf_counter()
                async for pcm in s.tts.synthesize(syn.text):
                    if syn.ttfb_ms is None:
                        syn.ttfb_ms = (time.perf_counter() - start) * 1000
                    syn.chunks.put_nowait(pcm)
        except ProviderError as err:
            s.provider_error(err)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            s._error("tts", f"{type(exc).__name__}: {exc}")
        finally:
            syn.chunks.put_nowait(_DONE)

    async def _tts_worker(self) -> None:
        """Plays the sentences' audio in order, each as soon as its first bytes arrive."""
        s, h, t = self.s, self.h, self.t
        tts, playout = s.tts, s._playout
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
            s.emit(ev.TtsAudio(speech_id=h.id, text=syn.text, duration_ms=round(nbytes / 2 / tts.sample_rate * 1000, 1),
                               ttfb_ms=round(syn.ttfb_ms or 0.0, 3), bytes=nbytes))
