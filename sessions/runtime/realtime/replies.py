"""The agent's side of a realtime session: model responses → paced audio, tools, history.

A `Reply` is one agent utterance (a SpeechHandle): one model response, or several when the
model calls tools (each tool round is answered with `function_call_output` items and a new
`response.create` for the same reply). One reply plays at a time; the others wait in
order (their audio, if the server already sends it, waits with them).
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.tools.calls import ToolCall, ToolInvocation, ToolResult

from .. import events as ev
from ..playout import PlayedSegment, PlayoutJob
from ..speech import SpeechHandle
from ..tool_calls import record_tool_result, run_tool
from .connection import RATE, decode_audio

if TYPE_CHECKING:
    from .session import RealtimeSession


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
    first_delta_at: float | None = None  # perf_counter when the first audio arrived
    pushed: int = 0  # samples handed to the playout
    marks: deque[tuple[int, float]] = field(default_factory=deque)  # (sample offset, monotonic recv) per delta

    def transcript(self) -> str:
        return " ".join(s.text.strip() for s in self.segments.values() if s.text.strip())


class ReplyDriver:
    def __init__(self, session: "RealtimeSession") -> None:
        self.s = session
        self.current: Reply | None = None
        self.queue: deque[Reply] = deque()
        self._by_response: dict[str, Reply] = {}
        self._by_speech: dict[str, Reply] = {}
        self.dropped_deltas = 0

    @property
    def idle(self) -> bool:
        return self.current is None and not self.queue

    # -- scheduling ------------------------------------------------------------------------------
    def schedule(self, handle: SpeechHandle, params: dict[str, Any] | None = None, *, request: bool = True) -> Reply:
        s = self.s
        s.emit(ev.SpeechCreated(speech_id=handle.id, source=handle.source, user_initiated=handle.user_initiated,
                                allow_interruptions=handle.allow_interruptions))
        reply = Reply(handle, dict(params or {}))
        self._by_speech[handle.id] = reply
        if s._stopping:
            handle._mark_done()
            return reply
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
        s = self.s
        self.current = reply
        s.current_speech = reply.handle
        assert s._playout is not None
        reply.job = s._playout.begin(reply.handle.id)
        for seg, pcm in reply.pending:
            self._push(reply, seg, pcm, None)
        reply.pending.clear()
        s._set_agent_state("thinking")
        if request:
            self._request(reply)
        elif reply.input_done:
            s._playout.end_input()

    def _request(self, reply: Reply) -> None:
        s = self.s
        assert s._link is not None
        reply.requested_at = time.perf_counter()
        if reply.handle.timer.committed is None:
            reply.handle.timer.committed = reply.requested_at
        reply.input_done = False
        s._link.response_create({**reply.params, "metadata": {"speech_id": reply.handle.id}})

    def _next(self) -> None:
        s = self.s
        if s._stopping:
            return
        if self.queue:
            reply = self.queue.popleft()
            self._begin(reply, request=reply.response_id is None)
        else:
            s._set_agent_state("listening")

    # -- server events -----------------------------------------------------------------------------
    def on_response_created(self, d: dict[str, Any]) -> None:
        r = d.get("response") or {}
        rid = r.get("id") or ""
        speech_id = (r.get("metadata") or {}).get("speech_id")
        reply = self._by_speech.get(speech_id) if speech_id else None
        if reply is None and speech_id:  # ours, but interrupted before the server started it
            if self.s._link is not None:
                self.s._link.response_cancel(rid)
            return
        if reply is None:  # the server answered on its own (server VAD turn)
            reply = self._server_reply()
        reply.response_id = rid
        reply.active = True
        reply.responses += 1
        reply.handle.timer.llm_calls += 1
        self._by_response[rid] = reply

    def _server_reply(self) -> Reply:
        s = self.s
        cur = self.current
        if cur is not None and not cur.active and cur.response_id is None and cur.responses == 0:
            # ours was requested but the server's own response won; ours goes again afterwards
            self.current = None
            s.current_speech = None
            assert s._playout is not None
            s._playout.clear()
            self.queue.appendleft(cur)
        elif cur is not None and cur.handle.allow_interruptions and s.options.turn.allow_interruptions:
            self.interrupt(reason="user_speech")
        timer = s.user.take_committed()
        h = SpeechHandle(source="generate_reply", user_initiated=True, timer=timer,
                         allow_interruptions=s.options.turn.allow_interruptions)
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
        if self.s.delta_handling_ms is not None:
            self.s.delta_handling_ms.append((time.perf_counter() - recv_perf) * 1000)

    def _push(self, reply: Reply, seg: PlayedSegment, pcm: np.ndarray, recv_mono: float | None) -> None:
        s = self.s
        assert s._playout is not None
        if reply.job is not None and seg not in reply.job.segments:
            reply.job.segments.append(seg)
        if recv_mono is not None and s.audio_lag_ms is not None:
            reply.marks.append((reply.pushed, recv_mono))
        reply.pushed += pcm.size
        s._playout.push(seg, pcm)

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
        s = self.s
        call = ToolCall(call_id=d.get("call_id") or "", name=d.get("name") or "", arguments=d.get("arguments") or "")
        reply.calls.append(call)
        s.emit(ev.ToolCalled(call_id=call.call_id, name=call.name, arguments=call.arguments,
                             speech_id=reply.handle.id))
        reply.handle.timer.tool_calls += 1
        inv = ToolInvocation(session=s, speech_handle=reply.handle, user_data=s.user_data, session_id=s.id,
                             agent_id=s.options.agent_id)
        reply.tool_tasks.append(s._spawn(run_tool(s.tools, call, inv), f"tool-{call.call_id}"))

    def on_rejected(self) -> None:
        """Our response.create lost to a response already in progress: ask again after it."""
        cur = self.current
        if cur is not None and cur.response_id is None and not cur.cancelled:
            cur.retry = True

    def on_response_done(self, d: dict[str, Any]) -> None:
        s = self.s
        r = d.get("response") or {}
        reply = self._by_response.pop(r.get("id") or "", None)
        cur = self.current
        if cur is not None and cur.retry and cur is not reply and not s._stopping:
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
        s.add_usage(usage)
        if reply.cancelled:
            return
        status = r.get("status")
        if status in ("failed", "incomplete"):
            details = r.get("status_details") or {}
            msg = (details.get("error") or {}).get("message") or details.get("reason") or status
            reply.handle.error = str(msg)
            s._error("llm", f"realtime response {status}: {msg}", kind="status")
            reply.tool_tasks.clear()
        if reply.tool_tasks and status == "completed":
            s._spawn(self._after_tools(reply), f"tools-{reply.handle.id}")
            return
        self._end_input(reply)

    def _end_input(self, reply: Reply) -> None:
        reply.input_done = True
        if reply is self.current and self.s._playout is not None and self.s._playout.job is reply.job:
            self.s._playout.end_input()

    async def _after_tools(self, reply: Reply) -> None:
        s = self.s
        tasks, reply.tool_tasks = reply.tool_tasks, []
        calls, reply.calls = reply.calls, []
        results = await asyncio.gather(*tasks)
        if reply.cancelled or s._stopping:
            return
        s.add_item({"role": "assistant", "content": None, "tool_calls": [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls]})
        assert s._link is not None
        for res in results:
            record_tool_result(s, res)
            s._link.item_create({"type": "function_call_output", "call_id": res.call_id, "output": res.output})
        h = reply.handle
        h.tool_steps += 1
        if h.tool_steps >= s.options.turn.max_tool_steps:
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
            self.s._set_agent_state("speaking")
        lags = self.s.audio_lag_ms
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
        s, h = self.s, reply.handle
        job = reply.job
        h.generated_text = reply.transcript()
        h.played_text = (job.played_text() if job is not None else "") or h.generated_text
        text = h.played_text
        if h.add_to_history and text:
            s.add_item({"role": "assistant", "content": text})
        if text:
            s._spawn(s.transport.publish_transcript(text, speaker="agent", final=True), "transcript")
        s.emit(ev.ResponseGenerated(speech_id=h.id, text=text, tool_steps=h.tool_steps))
        self._metrics(reply)
        self._done(reply)
        self._next()

    def _metrics(self, reply: Reply) -> None:
        m = reply.handle.timer.metrics(reply.handle.id)
        if m.end_to_end_ms is not None:
            self.s.audio_state.current_latency_ms = m.end_to_end_ms
        self.s.emit(ev.MetricsCollected(metrics=m))

    def _done(self, reply: Reply) -> None:
        reply.handle._mark_done()
        self._by_speech.pop(reply.handle.id, None)
        if self.current is reply:
            self.current = None
            self.s.current_speech = None

    # -- interruption ------------------------------------------------------------------------------
    def interrupt(self, *, reason: str, emit: bool = True, server_cancels: bool = False) -> bool:
        """`server_cancels`: the server's VAD heard the user and cancels its response itself."""
        reply = self.current
        if reply is None or reply.handle.done():
            return False
        if reason == "user_speech" and not (reply.handle.allow_interruptions and self.s.options.turn.allow_interruptions):
            return False
        self._cancel(reply, reason=reason, emit=emit, server_cancels=server_cancels)
        self._next()
        return True

    def _cancel(self, reply: Reply, *, reason: str, emit: bool, server_cancels: bool = False) -> None:
        s, h = self.s, reply.handle
        reply.cancelled = True
        job = None
        if s._playout is not None and reply.job is not None and s._playout.job is reply.job:
            job = s._playout.clear()
            s.transport.clear_audio()
        link = s._link
        if link is not None:
            # what the user heard is all the model may remember: cut its item at the played position
            # (an out-of-band response, conversation "none", left no item to cut)
            in_conversation = reply.params.get("conversation") != "none"
            for item_id, seg in reply.segments.items() if in_conversation else ():
                if seg.samples_total and (seg.samples_played < seg.samples_total or reply.active):
                    link.truncate(item_id, int(seg.samples_played * 1000 / RATE))
            if reply.active and not server_cancels:
                link.response_cancel(reply.response_id)
        for task in reply.tool_tasks:
            task.cancel()
        h.interrupted = True
        h.generated_text = reply.transcript()
        h.played_text = job.played_text() if job is not None else ""
        played_ms = (job.samples_played if job is not None else 0) * 1000 / RATE
        if emit:
            s.emit(ev.Interrupted(speech_id=h.id, played_ms=round(played_ms, 1), played_text=h.played_text,
                                  reason=reason if reason in ("user_speech", "operator", "api", "session_end") else "api"))  # type: ignore[arg-type]
            s.emit(ev.ResponseCancelled(speech_id=h.id, reason=reason))
        if h.add_to_history and h.played_text:
            s.add_item({"role": "assistant", "content": h.played_text}, interrupted=True)
        if reply.responses:
            self._metrics(reply)
        self._done(reply)

    def cancel_all(self, reason: str) -> None:
        """Session end: the current reply is interrupted, the waiting ones dropped."""
        if self.current is not None:
            self._cancel(self.current, reason=reason, emit=True)
        while self.queue:
            r = self.queue.popleft()
            r.cancelled = True
            if r.active and self.s._link is not None:
                self.s._link.response_cancel(r.response_id)
            self._done(r)
