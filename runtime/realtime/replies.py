"""The agent's side of a realtime session: model responses → paced audio, tools, history.

A `Reply` is one agent utterance (a SpeechHandle): one model response, or several when the
model calls tools (each tool round is answered with `function_call_output` items and a new
`response.create` for the same reply). One reply plays at a time; the others wait in
order (their audio, if the server already sends it, waits with them).

The driver gets the playout and the model link (`attach`), an emit function and a spawner,
and reaches its session for the rest through `ReplyHooks`. A reply is stopped only through
its handle's `cancel(reason)`: the reply's own subscription cuts the model's items and
cancels the response, the playout's stops the audio.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from runtime.provider_configs import TurnConfig
from runtime.tool_types import ToolCall, ToolInvocation, ToolResult

from .. import events as ev
from ..interfaces import Emit, Spawn, ToolExecutor
from ..playout import PlayedSegment, Playout, PlayoutJob, cut_on_cancel
from ..speech import SpeechHandle, TurnTimer, can_interrupt
from ..tool_calls import record_tool_result, run_tool
from .connection import RATE, RealtimeLink, decode_audio


@runtime_checkable
class ReplyHooks(Protocol):
    """What the reply side needs from its session besides the playout, the link, emit and spawn."""

    @property
    def stopping(self) -> bool: ...

    def set_agent_state(self, state: ev.AgentState) -> None: ...

    def take_committed_turn(self) -> TurnTimer:
        """The timer of the user turn the server is now answering on its own (server VAD)."""
        ...

    def add_item(self, item: dict[str, Any], *, interrupted: bool = False) -> None: ...

    def add_usage(self, usage: dict[str, Any]) -> None: ...

    def tool_invocation(self, speech: SpeechHandle) -> ToolInvocation: ...

    def publish_transcript(self, text: str, *, speaker: str) -> None: ...

    def report_failure(self, source: str, message: str, *, kind: str) -> None: ...

    def report_metrics(self, metrics: ev.TurnMetrics) -> None: ...

    def record_interruption(self, speech: SpeechHandle, reason: str, *, emit: bool) -> None: ...

    def settled(self) -> None: ...


@dataclass(eq=False)
class Reply:
    handle: SpeechHandle
    params: dict[str, Any] = field(default_factory=dict)  # response.create overrides
    job: PlayoutJob | None = None
    response_id: str | None = None
    active: bool = False  # a response of ours is in flight at the server
    requested_at: float | None = None
    segments: dict[str, PlayedSegment] = field(default_factory=dict)  # assistant item id → audio + transcript
    pending: list[tuple[PlayedSegment, np.ndarray]] = field(default_factory=list)  # audio before we play
    tool_tasks: list[asyncio.Task[ToolResult]] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    responses: int = 0
    input_done: bool = False
    cancelled: bool = False
    retry: bool = False  # our response.create was refused (another response active): ask again
    server_cancels: bool = False  # interrupted by the server's VAD, which cancels the response itself
    first_delta_at: float | None = None  # perf_counter when the first audio arrived
    pushed: int = 0  # samples handed to the playout
    marks: deque[tuple[int, float]] = field(default_factory=deque)  # (sample offset, monotonic recv) per delta

    def transcript(self) -> str:
        return " ".join(s.text.strip() for s in self.segments.values() if s.text.strip())


class ReplyDriver:
    def __init__(self, hooks: ReplyHooks, *, emit: Emit, spawn: Spawn, turn: TurnConfig,
                 tools: ToolExecutor | None, audio_lag_ms: deque[float] | None = None,
                 delta_handling_ms: deque[float] | None = None) -> None:
        self.hooks = hooks
        self.emit = emit
        self.spawn = spawn
        self.turn = turn
        self.tools = tools
        # benchmarks: per audio delta, socket read → its first sample at the transport (minus the wait
        # for audio ahead of it), and socket read → queued for playout (our handling alone)
        self.audio_lag_ms = audio_lag_ms
        self.delta_handling_ms = delta_handling_ms
        self.playout: Playout | None = None
        self.link: RealtimeLink | None = None
        self.current: Reply | None = None
        self.queue: deque[Reply] = deque()
        self._by_response: dict[str, Reply] = {}
        self._by_speech: dict[str, Reply] = {}
        self.dropped_deltas = 0

    def attach(self, playout: Playout, link: RealtimeLink) -> None:
        """The session is connected: replies play on `playout` and talk to the model on `link`."""
        self.playout, self.link = playout, link

    @property
    def idle(self) -> bool:
        return self.current is None and not self.queue

    # -- scheduling ------------------------------------------------------------------------------
    def schedule(self, handle: SpeechHandle, params: dict[str, Any] | None = None, *, request: bool = True) -> Reply:
        self.emit(ev.SpeechCreated(speech_id=handle.id, source=handle.source, user_initiated=handle.user_initiated,
                                   allow_interruptions=handle.allow_interruptions))
        reply = Reply(handle, dict(params or {}))
        self._by_speech[handle.id] = reply
        if self.hooks.stopping:
            handle._mark_done()
            return reply
        handle.on_cancel(lambda _reason: self._stop_at_server(reply))
        if not request:  # the server already started this one (server VAD)
            reply.requested_at = handle.timer.committed
        if self.current is None:
            self._begin(reply, request=request)
        elif request:
            self.queue.append(reply)
        else:
            self.queue.appendleft(reply)
        return reply

    def _begin(self, reply: Reply, *, request: bool = True) -> None:
        playout = self.playout
        assert playout is not None
        self.current = reply
        reply.job = playout.begin(reply.handle.id)
        cut_on_cancel(playout, reply.job, reply.handle)
        for seg, pcm in reply.pending:
            self._push(reply, seg, pcm, None)
        reply.pending.clear()
        self.hooks.set_agent_state("thinking")
        if request:
            self._request(reply)
        elif reply.input_done:
            playout.end_input()

    def _request(self, reply: Reply) -> None:
        assert self.link is not None
        reply.requested_at = time.perf_counter()
        if reply.handle.timer.committed is None:
            reply.handle.timer.committed = reply.requested_at
        reply.input_done = False
        self.link.response_create({**reply.params, "metadata": {"speech_id": reply.handle.id}})

    def _next(self) -> None:
        if self.hooks.stopping:
            return
        if self.queue:
            reply = self.queue.popleft()
            self._begin(reply, request=reply.response_id is None)
        else:
            self.hooks.set_agent_state("listening")

    # -- server events -----------------------------------------------------------------------------
    def on_response_created(self, d: dict[str, Any]) -> None:
        r = d.get("response") or {}
        rid = r.get("id") or ""
        speech_id = (r.get("metadata") or {}).get("speech_id")
        reply = self._by_speech.get(speech_id) if speech_id else None
        if reply is None and speech_id:  # ours, but interrupted before the server started it
            if self.link is not None:
                self.link.response_cancel(rid)
            return
        if reply is None:  # the server answered on its own (server VAD turn)
            reply = self._server_reply()
        reply.response_id = rid
        reply.active = True
        reply.responses += 1
        reply.handle.timer.llm_calls += 1
        self._by_response[rid] = reply

    def _server_reply(self) -> Reply:
        cur = self.current
        if cur is not None and not cur.active and cur.response_id is None and cur.responses == 0:
            # ours was requested but the server's own response won; ours goes again afterwards
            self.current = None
            assert self.playout is not None
            self.playout.clear()
            self.queue.appendleft(cur)
        elif cur is not None:
            self.interrupt(reason="user_speech")
        h = SpeechHandle(source="generate_reply", user_initiated=True, timer=self.hooks.take_committed_turn(),
                         allow_interruptions=self.turn.allow_interruptions)
        return self.schedule(h, request=False)

    def _reply_for(self, d: dict[str, Any]) -> Reply | None:
        reply = self._by_response.get(d.get("response_id") or "")
        if reply is None or reply.cancelled:
            self.dropped_deltas += 1
            return None
        return reply

    def _segment(self, reply: Reply, item_id: str) -> PlayedSegment:
        seg = reply.segments.get(item_id)
        if seg is None:
            seg = reply.segments[item_id] = PlayedSegment("")
            if reply is self.current and reply.job is not None:
                reply.job.segments.append(seg)
        return seg

    def on_audio_delta(self, d: dict[str, Any], recv_perf: float, recv_mono: float) -> None:
        reply = self._reply_for(d)
        if reply is None:
            return
        pcm = decode_audio(d.get("delta") or "")
        if pcm.size == 0:
            return
        if reply.first_delta_at is None:
            reply.first_delta_at = recv_perf
            t = reply.handle.timer
            if t.llm_ttft_ms is None and reply.requested_at is not None:
                t.llm_ttft_ms = round((recv_perf - reply.requested_at) * 1000, 3)
            if t.committed is not None and not t.critical_done:
                # provider time up to the first audio: the rest until the frame goes out is ours
                t.critical_provider_ms = max(0.0, (recv_perf - t.committed) * 1000)
                t.critical_done = True
        seg = self._segment(reply, d.get("item_id") or "")
        if reply is self.current:
            self._push(reply, seg, pcm, recv_mono)
        else:
            reply.pending.append((seg, pcm))
        if self.delta_handling_ms is not None:
            self.delta_handling_ms.append((time.perf_counter() - recv_perf) * 1000)

    def _push(self, reply: Reply, seg: PlayedSegment, pcm: np.ndarray, recv_mono: float | None) -> None:
        assert self.playout is not None
        if reply.job is not None and seg not in reply.job.segments:
            reply.job.segments.append(seg)
        if recv_mono is not None and self.audio_lag_ms is not None:
            reply.marks.append((reply.pushed, recv_mono))
        reply.pushed += pcm.size
        self.playout.push(seg, pcm)

    def on_transcript_delta(self, d: dict[str, Any]) -> None:
        reply = self._reply_for(d)
        if reply is not None:
            seg = self._segment(reply, d.get("item_id") or "")
            seg.text += d.get("delta") or ""

    def on_transcript_done(self, d: dict[str, Any]) -> None:
        reply = self._reply_for(d)
        if reply is not None and d.get("transcript") is not None:
            self._segment(reply, d.get("item_id") or "").text = d["transcript"]

    def on_audio_done(self, d: dict[str, Any]) -> None:
        reply = self._reply_for(d)
        if reply is not None:
            self._segment(reply, d.get("item_id") or "").complete = True

    def on_call_done(self, d: dict[str, Any]) -> None:
        reply = self._reply_for(d)
        if reply is None:
            return
        call = ToolCall(call_id=d.get("call_id") or "", name=d.get("name") or "", arguments=d.get("arguments") or "")
        reply.calls.append(call)
        self.emit(ev.ToolCalled(call_id=call.call_id, name=call.name, arguments=call.arguments,
                                speech_id=reply.handle.id))
        reply.handle.timer.tool_calls += 1
        inv = self.hooks.tool_invocation(reply.handle)
        reply.tool_tasks.append(self.spawn(run_tool(self.tools, call, inv), f"tool-{call.call_id}"))

    def on_rejected(self) -> None:
        """Our response.create lost to a response already in progress: ask again after it."""
        cur = self.current
        if cur is not None and cur.response_id is None and not cur.cancelled:
            cur.retry = True

    def on_response_done(self, d: dict[str, Any]) -> None:
        r = d.get("response") or {}
        reply = self._by_response.pop(r.get("id") or "", None)
        cur = self.current
        if cur is not None and cur.retry and cur is not reply and not self.hooks.stopping:
            cur.retry = False
            self._request(cur)
        if reply is None:
            return
        reply.active = False
        usage = r.get("usage") or {}
        t = reply.handle.timer
        if reply.requested_at is not None:
            t.llm_ms += (time.perf_counter() - reply.requested_at) * 1000
        t.prompt_tokens += int(usage.get("input_tokens") or 0)
        t.completion_tokens += int(usage.get("output_tokens") or 0)
        t.total_tokens += int(usage.get("total_tokens") or 0)
        self.hooks.add_usage(usage)
        if reply.cancelled:
            return
        status = r.get("status")
        if status in ("failed", "incomplete"):
            details = r.get("status_details") or {}
            msg = (details.get("error") or {}).get("message") or details.get("reason") or status
            reply.handle.error = str(msg)
            self.hooks.report_failure("llm", f"realtime response {status}: {msg}", kind="status")
            reply.tool_tasks.clear()
        if reply.tool_tasks and status == "completed":
            self.spawn(self._after_tools(reply), f"tools-{reply.handle.id}")
            return
        self._end_input(reply)

    def _end_input(self, reply: Reply) -> None:
        reply.input_done = True
        if reply is self.current and self.playout is not None and self.playout.job is reply.job:
            self.playout.end_input()

    async def _after_tools(self, reply: Reply) -> None:
        tasks, reply.tool_tasks = reply.tool_tasks, []
        calls, reply.calls = reply.calls, []
        results = await asyncio.gather(*tasks)
        if reply.cancelled or self.hooks.stopping:
            return
        add_item = self.hooks.add_item
        add_item({"role": "assistant", "content": None, "tool_calls": [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls]})
        assert self.link is not None
        for res in results:
            record_tool_result(res, emit=self.emit, add_item=add_item)
            self.link.item_create({"type": "function_call_output", "call_id": res.call_id, "output": res.output})
        h = reply.handle
        h.tool_steps += 1
        if h.tool_steps >= self.turn.max_tool_steps:
            reply.params["tool_choice"] = "none"
        self._request(reply)

    # -- audio out ---------------------------------------------------------------------------------
    def on_out_frame(self, job: PlayoutJob, now_sched: float) -> None:
        reply = self.current
        if reply is None or reply.job is not job:
            return
        t = reply.handle.timer
        if t.first_audio is None:
            t.first_audio = time.perf_counter()
            self.hooks.set_agent_state("speaking")
        lags = self.audio_lag_ms
        if lags is not None and reply.marks:
            now = time.monotonic()
            while reply.marks and reply.marks[0][0] < job.samples_played:  # its first sample went out now
                _, recv = reply.marks.popleft()
                lags.append((now - max(recv, now_sched)) * 1000)

    def on_drained(self, job: PlayoutJob) -> None:
        reply = self.current
        if reply is None or reply.job is not job or not reply.input_done:
            return
        self._finish(reply)

    def _finish(self, reply: Reply) -> None:
        h = reply.handle
        job = reply.job
        h.generated_text = reply.transcript()
        h.played_text = (job.played_text() if job is not None else "") or h.generated_text
        text = h.played_text
        if h.add_to_history and text:
            self.hooks.add_item({"role": "assistant", "content": text})
        if text:
            self.hooks.publish_transcript(text, speaker="agent")
        self.emit(ev.ResponseGenerated(speech_id=h.id, text=text, tool_steps=h.tool_steps))
        self.hooks.report_metrics(h.timer.metrics(h.id))
        self._done(reply)
        self._next()

    def _done(self, reply: Reply) -> None:
        reply.handle._mark_done()
        self._by_speech.pop(reply.handle.id, None)
        if self.current is reply:
            self.current = None
        self.hooks.settled()

    # -- interruption ------------------------------------------------------------------------------
    def interrupt(self, *, reason: str, server_cancels: bool = False) -> bool:
        """`server_cancels`: the server's VAD heard the user and cancels its response itself."""
        reply = self.current
        if reply is None or not can_interrupt(reply.handle, reason, allow_interruptions=self.turn.allow_interruptions):
            return False
        self._cancel(reply, reason=reason, emit=True, server_cancels=server_cancels)
        self._next()
        return True

    def _cancel(self, reply: Reply, *, reason: str, emit: bool, server_cancels: bool = False) -> None:
        h = reply.handle
        reply.server_cancels = server_cancels
        h.cancel(reason)  # the reply stops at the server (below) and the playout stops its audio
        self.hooks.record_interruption(h, reason, emit=emit)
        if reply is self.current and reply.responses:
            self.hooks.report_metrics(h.timer.metrics(h.id))
        self._done(reply)

    def _stop_at_server(self, reply: Reply) -> None:
        """The reply's subscription to its handle's cancel."""
        reply.cancelled = True
        link = self.link
        if link is not None:
            # what the user heard is all the model may remember: cut its item at the played position
            # (an out-of-band response, conversation "none", left no item to cut)
            in_conversation = reply.params.get("conversation") != "none"
            for item_id, seg in reply.segments.items() if in_conversation else ():
                if seg.samples_total and (seg.samples_played < seg.samples_total or reply.active):
                    link.truncate(item_id, int(seg.samples_played * 1000 / RATE))
            if reply.active and not reply.server_cancels:
                link.response_cancel(reply.response_id)
        for task in reply.tool_tasks:
            task.cancel()
        reply.handle.generated_text = reply.transcript()

    def cancel_all(self, reason: str) -> None:
        """Session end: the current reply is interrupted, the waiting ones dropped."""
        if self.current is not None:
            self._cancel(self.current, reason=reason, emit=True)
        while self.queue:
            self._cancel(self.queue.popleft(), reason=reason, emit=False)
