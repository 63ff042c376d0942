"""A loopback test double of the OpenAI Realtime WebSocket protocol (GA event names).

    with RealtimeDouble() as api:
        api.transcripts.push("what is the weather in paris")
        api.responses.push(RealtimeReply.tool("get_weather", {"city": "Paris"}),
                           RealtimeReply.say("It is sunny in Paris."))
        client = AsyncOpenAI(base_url=api.base_url, api_key="test")
        async with client.realtime.connect(model="gpt-realtime") as conn: ...

It serves `ws://127.0.0.1:<port>/v1/realtime?model=…` with the `websockets` server on a
background thread (its own event loop, like a real remote server), and answers:

- `session.update` → `session.updated` (the merged session); `session.created` on connect.
- `input_audio_buffer.append` (base64 pcm16 @ 24 kHz) → buffered. With server VAD on
  (`audio.input.turn_detection.type == "server_vad"`) an energy detector over 20 ms windows
  emits `input_audio_buffer.speech_started` / `speech_stopped`, commits, transcribes and
  (with `create_response`) answers; `interrupt_response` cancels an active response.
- `input_audio_buffer.commit` → `input_audio_buffer.committed`, `conversation.item.added`,
  `conversation.item.input_audio_transcription.completed` (the next scripted transcript).
- `conversation.item.create` → `conversation.item.added` + `conversation.item.done`.
- `response.create` → `response.created`, output items, `response.output_audio.delta`
  and `response.output_audio_transcript.delta` interleaved (faster than real time, like
  the real service), `response.function_call_arguments.delta/done`, `response.done`
  with usage. `response.cancel` stops it (`response.done` status `cancelled`).
- `conversation.item.truncate` → `conversation.item.truncated` (error if past the audio).

Every client event is recorded in `received`; `inject(event)` sends any server event.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.helpers import wait_for_async

RATE = 24_000


@dataclass
class RealtimeReply:
    """One scripted response: spoken `text` (audio + transcript), then `tool_calls`."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    audio_ms: float | None = None  # default: ms_per_char × len(text)
    chunk_ms: int = 100
    speed: float | None = None  # × real time; None: the double's default
    first_delay_s: float = 0.0
    fail: str | None = None  # a response.done with status "failed" and this message

    @classmethod
    def say(cls, text: str, **kw: Any) -> "RealtimeReply":
        return cls(text=text, **kw)

    @classmethod
    def tool(cls, name: str, arguments: dict[str, Any] | str, *, text: str = "", **kw: Any) -> "RealtimeReply":
        return cls(text=text, tool_calls=[(name, arguments)], **kw)


class Script:
    """A thread-safe FIFO of scripted items."""

    def __init__(self) -> None:
        self._q: deque[Any] = deque()
        self._lock = threading.Lock()

    def push(self, *items: Any) -> None:
        with self._lock:
            self._q.extend(items)

    def pop(self) -> Any:
        with self._lock:
            return self._q.popleft() if self._q else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._q)


def tone(ms: float, freq: float = 220.0, level: float = 0.25) -> bytes:
    n = int(RATE * ms / 1000)
    t = np.arange(n, dtype=np.float32) / RATE
    return (np.sin(2 * math.pi * freq * t) * level * 32767).astype("<i2").tobytes()


class _Conn:
    """Per-connection protocol state."""

    def __init__(self, double: "RealtimeDouble", ws: Any) -> None:
        self.d = double
        self.ws = ws
        self.session: dict[str, Any] = {
            "type": "realtime", "object": "realtime.session", "id": f"sess_{next(double._ids)}",
            "model": "", "output_modalities": ["audio"], "instructions": "", "tools": [],
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": RATE}, "transcription": None,
                                "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                                   "silence_duration_ms": 500, "create_response": True,
                                                   "interrupt_response": True}},
                      "output": {"format": {"type": "audio/pcm", "rate": RATE}, "voice": "alloy", "speed": 1.0}},
        }
        self.items: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.buffer = bytearray()
        self.input_ms = 0.0  # audio appended since the connection opened
        self.response_task: asyncio.Task[None] | None = None
        self.response_id: str | None = None
        self.cancel_reason = ""
        # server VAD
        self._win = bytearray()
        self._voiced = 0
        self._silent = 0
        self.speaking = False
        self.speech_item = ""
        self.speech_start_ms = 0

    async def send(self, event: dict[str, Any]) -> None:
        event.setdefault("event_id", f"event_{next(self.d._ids)}")
        self.d.sent.append(event)
        await self.ws.send(json.dumps(event))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self.d._ids):05d}"

    # -- dispatch --------------------------------------------------------------------------
    async def handle(self, ev: dict[str, Any]) -> None:
        t = ev.get("type")
        if t == "session.update":
            self._merge(self.session, ev.get("session") or {})
            await self.send({"type": "session.updated", "session": self.session})
        elif t == "input_audio_buffer.append":
            pcm = base64.b64decode(ev.get("audio", ""))
            self.buffer += pcm
            self.input_ms += len(pcm) / 2 / RATE * 1000
            if self._server_vad() is not None:
                await self._vad(pcm)
        elif t == "input_audio_buffer.commit":
            await self._commit()
        elif t == "input_audio_buffer.clear":
            self.buffer.clear()
            await self.send({"type": "input_audio_buffer.cleared"})
        elif t == "conversation.item.create":
            item = dict(ev.get("item") or {})
            item.setdefault("id", self.new_id("item"))
            item.setdefault("object", "realtime.item")
            item["status"] = "completed"
            self._add_item(item)
            prev = self.order[-2] if len(self.order) > 1 else None
            await self.send({"type": "conversation.item.added", "previous_item_id": prev, "item": item})
            await self.send({"type": "conversation.item.done", "previous_item_id": prev, "item": item})
        elif t == "conversation.item.truncate":
            await self._truncate(ev)
        elif t == "response.create":
            if self.response_task is not None and not self.response_task.done():
                await self._error("conversation_already_has_active_response",
                                  f"Conversation already has an active response in progress: {self.response_id}")
                return
            self.response_task = asyncio.get_running_loop().create_task(self._respond(ev.get("response") or {}))
        elif t == "response.cancel":
            if self.response_task is None or self.response_task.done():
                await self._error("response_cancel_not_active", "Cancellation failed: no active response found")
                return
            await self._cancel("client_cancelled")
        else:
            await self._error("invalid_event", f"unsupported event type {t!r}")

    def _merge(self, into: dict[str, Any], upd: dict[str, Any]) -> None:
        for k, v in upd.items():
            if isinstance(v, dict) and isinstance(into.get(k), dict):
                self._merge(into[k], v)
            else:
                into[k] = v

    def _server_vad(self) -> dict[str, Any] | None:
        td = ((self.session.get("audio") or {}).get("input") or {}).get("turn_detection")
        return td if isinstance(td, dict) and td.get("type") == "server_vad" else None

    async def _error(self, code: str, message: str) -> None:
        await self.send({"type": "error", "error": {"type": "invalid_request_error", "code": code,
                                                    "message": message, "param": None, "event_id": None}})

    def _add_item(self, item: dict[str, Any]) -> None:
        self.items[item["id"]] = item
        self.order.append(item["id"])

    # -- input audio -------------------------------------------------------------------------
    async def _vad(self, pcm: bytes) -> None:
        td = self._server_vad()
        assert td is not None
        self._win += pcm
        win = RATE // 50 * 2  # 20 ms
        silence_ms = int(td.get("silence_duration_ms", 500))
        while len(self._win) >= win:
            x = np.frombuffer(bytes(self._win[:win]), dtype="<i2").astype(np.float32)
            del self._win[:win]
            rms = math.sqrt(float(np.dot(x, x)) / x.size) / 32768.0
            voiced = rms > self.d.vad_threshold
            self._voiced = self._voiced + 1 if voiced else 0
            self._silent = 0 if voiced else self._silent + 1
            pos = int(self.input_ms - len(self._win) / 2 / RATE * 1000)
            if not self.speaking and self._voiced >= 3:
                self.speaking = True
                self.speech_item = self.new_id("item")
                self.speech_start_ms = max(0, pos - 60)
                await self.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": self.speech_start_ms,
                                 "item_id": self.speech_item})
                if td.get("interrupt_response", True) and self.response_task is not None \
                        and not self.response_task.done():
                    await self._cancel("turn_detected")
            elif self.speaking and self._silent * 20 >= silence_ms:
                self.speaking = False
                await self.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": pos - silence_ms,
                                 "item_id": self.speech_item})
                await self._commit(item_id=self.speech_item)
                if td.get("create_response", True):
                    if self.response_task is None or self.response_task.done():
                        self.response_task = asyncio.get_running_loop().create_task(self._respond({}))

    async def _commit(self, item_id: str | None = None) -> None:
        if not self.buffer:
            await self._error("input_audio_buffer_commit_empty", "Error committing input audio buffer: buffer is empty")
            return
        item_id = item_id or self.new_id("item")
        audio_ms = len(self.buffer) / 2 / RATE * 1000
        self.d.committed_audio.append(bytes(self.buffer))
        self.buffer.clear()
        prev = self.order[-1] if self.order else None
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user", "status": "completed",
                "content": [{"type": "input_audio", "transcript": None}]}
        self._add_item(item)
        await self.send({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": prev})
        await self.send({"type": "conversation.item.added", "previous_item_id": prev, "item": item})
        if ((self.session.get("audio") or {}).get("input") or {}).get("transcription"):
            text = self.d.transcripts.pop()
            if text is None:
                text = self.d.default_transcript
            item["content"][0]["transcript"] = text
            await self.send({"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
                             "content_index": 0, "transcript": text,
                             "usage": {"type": "duration", "seconds": round(audio_ms / 1000, 3)}})
        await self.send({"type": "conversation.item.done", "previous_item_id": prev, "item": item})

    # -- responses ---------------------------------------------------------------------------
    async def _cancel(self, reason: str) -> None:
        task = self.response_task
        if task is None or task.done():
            return
        self.cancel_reason = reason
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def _respond(self, params: dict[str, Any]) -> None:
        d = self.d
        reply = d.responses.pop()
        if callable(reply):
            reply = reply(params)
        if reply is None:
            reply = RealtimeReply.say(d.default_reply, audio_ms=d.default_audio_ms, chunk_ms=d.default_chunk_ms)
        if isinstance(reply, str):
            reply = RealtimeReply.say(reply)
        d.requests.append(params)
        rid = self.new_id("resp")
        self.response_id = rid
        meta = params.get("metadata")
        output: list[dict[str, Any]] = []
        response = {"object": "realtime.response", "id": rid, "status": "in_progress", "output": output,
                    "metadata": meta, "output_modalities": ["audio"], "usage": None}
        audio_samples = 0
        text_out = ""
        try:
            await self.send({"type": "response.created", "response": dict(response, output=[])})
            if reply.first_delay_s:
                await asyncio.sleep(reply.first_delay_s)
            if reply.fail:
                response.update(status="failed", status_details={"type": "failed", "error": {
                    "type": "server_error", "code": "server_error", "message": reply.fail}})
                await self.send({"type": "response.done", "response": response})
                return
            idx = 0
            if reply.text:
                item_id = self.new_id("item")
                item: dict[str, Any] = {"id": item_id, "object": "realtime.item", "type": "message",
                                        "role": "assistant", "status": "in_progress", "content": []}
                self._add_item(item)
                output.append(item)
                base = {"response_id": rid, "item_id": item_id, "output_index": idx}
                await self.send({"type": "response.output_item.added", "response_id": rid, "output_index": idx,
                                 "item": dict(item, content=[])})
                await self.send({"type": "conversation.item.added", "previous_item_id": self.order[-2] if len(self.order) > 1 else None,
                                 "item": dict(item, content=[])})
                await self.send({"type": "response.content_part.added", **base, "content_index": 0,
                                 "part": {"type": "audio", "transcript": ""}})
                ms = reply.audio_ms if reply.audio_ms is not None else d.ms_per_char * len(reply.text)
                pcm = tone(ms)
                item["content"] = [{"type": "output_audio", "transcript": "", "audio_samples": 0}]
                step = RATE * reply.chunk_ms // 1000 * 2
                n_chunks = max(1, -(-len(pcm) // step))
                words = reply.text.split(" ")
                speed = reply.speed or d.speed
                sent_words = 0
                for i in range(n_chunks):
                    chunk = pcm[i * step:(i + 1) * step]
                    await self.send({"type": "response.output_audio.delta", **base, "content_index": 0,
                                     "delta": base64.b64encode(chunk).decode()})
                    audio_samples += len(chunk) // 2
                    item["content"][0]["audio_samples"] = audio_samples
                    upto = round(len(words) * (i + 1) / n_chunks)
                    if upto > sent_words:
                        part = " ".join(words[sent_words:upto])
                        delta = (" " if sent_words else "") + part
                        sent_words = upto
                        text_out += delta
                        item["content"][0]["transcript"] = text_out
                        await self.send({"type": "response.output_audio_transcript.delta", **base,
                                         "content_index": 0, "delta": delta})
                    if speed > 0:
                        await asyncio.sleep(reply.chunk_ms / 1000 / speed)
                    else:
                        await asyncio.sleep(0)
                item["status"] = "completed"
                await self.send({"type": "response.output_audio.done", **base, "content_index": 0})
                await self.send({"type": "response.output_audio_transcript.done", **base, "content_index": 0,
                                 "transcript": text_out})
                await self.send({"type": "response.content_part.done", **base, "content_index": 0,
                                 "part": {"type": "audio", "transcript": text_out}})
                await self.send({"type": "response.output_item.done", "response_id": rid, "output_index": idx,
                                 "item": _public(item)})
                await self.send({"type": "conversation.item.done", "item": _public(item)})
                idx += 1
            for name, args in reply.tool_calls:
                arguments = args if isinstance(args, str) else json.dumps(args)
                item_id, call_id = self.new_id("item"), self.new_id("call")
                item = {"id": item_id, "object": "realtime.item", "type": "function_call", "status": "in_progress",
                        "name": name, "call_id": call_id, "arguments": ""}
                self._add_item(item)
                output.append(item)
                await self.send({"type": "response.output_item.added", "response_id": rid, "output_index": idx,
                                 "item": dict(item)})
                half = len(arguments) // 2
                for part in (arguments[:half], arguments[half:]):
                    await self.send({"type": "response.function_call_arguments.delta", "response_id": rid,
                                     "item_id": item_id, "output_index": idx, "call_id": call_id, "delta": part})
                item.update(arguments=arguments, status="completed")
                await self.send({"type": "response.function_call_arguments.done", "response_id": rid,
                                 "item_id": item_id, "output_index": idx, "call_id": call_id, "name": name,
                                 "arguments": arguments})
                await self.send({"type": "response.output_item.done", "response_id": rid, "output_index": idx,
                                 "item": dict(item)})
                idx += 1
            response["status"] = "completed"
        except asyncio.CancelledError:
            response.update(status="cancelled", status_details={"type": "cancelled",
                                                                 "reason": self.cancel_reason or "client_cancelled"})
            for it in output:
                it["status"] = "incomplete"
        response["output"] = [_public(it) for it in output]
        response["usage"] = _usage(params, text_out, audio_samples)
        self.response_id = None
        await self.send({"type": "response.done", "response": response})

    async def _truncate(self, ev: dict[str, Any]) -> None:
        item = self.items.get(ev.get("item_id", ""))
        end_ms = int(ev.get("audio_end_ms", -1))
        if item is None or item.get("role") != "assistant":
            await self._error("item_truncate_invalid_item_id", f"no assistant item {ev.get('item_id')!r}")
            return
        content = item["content"][0] if item.get("content") else {}
        have_ms = content.get("audio_samples", 0) / RATE * 1000
        if end_ms < 0 or end_ms > have_ms + 1:
            await self._error("item_truncate_invalid_audio_end_ms",
                              f"audio_end_ms {end_ms} is past the item's {have_ms:.0f} ms of audio")
            return
        frac = end_ms / have_ms if have_ms else 0.0
        text = content.get("transcript") or ""
        content["transcript"] = text[: int(len(text) * frac)]
        self.d.truncations.append({"item_id": item["id"], "audio_end_ms": end_ms, "audio_ms": round(have_ms, 1),
                                   "content_index": ev.get("content_index", 0)})
        await self.send({"type": "conversation.item.truncated", "item_id": item["id"],
                         "content_index": ev.get("content_index", 0), "audio_end_ms": end_ms})


def _public(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    if out.get("content"):
        out["content"] = [{k: v for k, v in c.items() if k != "audio_samples"} for c in out["content"]]
    return out


def _usage(params: dict[str, Any], text: str, samples: int) -> dict[str, Any]:
    out_audio = samples // 480  # ~ one audio token per 20 ms
    out_text = max(0, len(text) // 4)
    in_text = 40 + len(json.dumps(params)) // 4
    in_audio = 25
    return {"total_tokens": in_text + in_audio + out_text + out_audio, "input_tokens": in_text + in_audio,
            "output_tokens": out_text + out_audio,
            "input_token_details": {"text_tokens": in_text, "audio_tokens": in_audio, "cached_tokens": 0},
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio}}


class RealtimeDouble:
    def __init__(self, *, speed: float = 4.0, ms_per_char: float = 30.0) -> None:
        self.responses = Script()
        self.transcripts = Script()
        self.default_reply = "This is the default answer."
        self.default_transcript = "hello"
        self.default_audio_ms: float | None = None  # default reply's audio length (None: follows the text)
        self.default_chunk_ms = 100
        self.speed = speed  # how much faster than real time audio is streamed (0: no pacing)
        self.ms_per_char = ms_per_char
        self.vad_threshold = 0.02  # RMS (full scale 1.0) above which a 20 ms window is voiced
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []  # response.create params, in order
        self.truncations: list[dict[str, Any]] = []
        self.committed_audio: list[bytes] = []
        self.connections: list[dict[str, Any]] = []  # path, query and headers of each connect
        self._ids = itertools.count(1)
        self._conns: list[_Conn] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._ready = threading.Event()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "RealtimeDouble":
        self._thread = threading.Thread(target=self._run, name="realtime-double", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("realtime double did not start")
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._serve())
        loop.run_forever()
        loop.close()

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._server = await serve(self._handler, "127.0.0.1", 0, max_size=None, compression=None)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._ready.set()

    async def _handler(self, ws: Any) -> None:
        req = ws.request
        self.connections.append({"path": req.path, "headers": {k.lower(): v for k, v in req.headers.raw_items()}})
        if not req.path.startswith("/v1/realtime"):
            await ws.close(4004, "not found")
            return
        conn = _Conn(self, ws)
        self._conns.append(conn)
        from urllib.parse import parse_qs, urlsplit

        conn.session["model"] = (parse_qs(urlsplit(req.path).query).get("model") or [""])[0]
        await conn.send({"type": "session.created", "session": conn.session})
        try:
            async for raw in ws:
                ev = json.loads(raw)
                self.received.append(ev)
                await conn.handle(ev)
        except Exception:  # noqa: BLE001 - a closed socket ends the connection
            pass
        finally:
            if conn.response_task is not None:
                conn.response_task.cancel()
            self._conns.remove(conn)

    def stop(self) -> None:
        """Stop serving; open connections are dropped at once (the TCP socket closes)."""
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed():
            return

        async def shutdown() -> None:
            self._server.close(close_connections=False)
            for c in list(self._conns):
                c.ws.transport.abort()
            await asyncio.wait_for(self._server.wait_closed(), 2)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        except Exception:  # noqa: BLE001
            pass
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def drop_connections(self) -> None:
        """Cut every open connection without a close handshake, keep serving."""
        assert self._loop is not None

        async def drop() -> None:
            for c in list(self._conns):
                c.ws.transport.abort()

        asyncio.run_coroutine_threadsafe(drop(), self._loop).result(5)

    def __enter__(self) -> "RealtimeDouble":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- driving and inspecting ------------------------------------------------------------------
    def inject(self, event: dict[str, Any]) -> None:
        """Send a server event on every open connection (e.g. a speech_started)."""
        assert self._loop is not None

        async def send() -> None:
            for c in list(self._conns):
                await c.send(dict(event))

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(5)

    def inject_raw(self, text: str) -> None:
        """Send any text frame (e.g. garbage) on every open connection."""
        assert self._loop is not None

        async def send() -> None:
            for c in list(self._conns):
                await c.ws.send(text)

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(5)

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in list(self.received) if e.get("type") == type_]

    def types(self) -> list[str]:
        return [e.get("type", "") for e in list(self.received) if e.get("type") != "input_audio_buffer.append"]

    def appended_ms(self) -> float:
        return sum(len(base64.b64decode(e["audio"])) / 2 / RATE * 1000 for e in self.of("input_audio_buffer.append"))

    async def wait_for(self, type_: str, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        await wait_for_async(lambda: len(self.of(type_)) >= count, timeout=timeout,
                             what=lambda: f"the double to get {type_} (x{count}); got {self.types()}")
        return self.of(type_)[count - 1]


Responder = Callable[[dict[str, Any]], RealtimeReply | str | None]


def main() -> None:
    """Serve in a process of its own (benchmarks): prints `port N`, runs until stdin closes."""
    import argparse
    import sys

    ap = argparse.ArgumentParser()
    ap.add_argument("--speed", type=float, default=4.0)
    ap.add_argument("--audio-ms", type=float, default=200.0)
    ap.add_argument("--chunk-ms", type=int, default=20)
    args = ap.parse_args()
    with RealtimeDouble(speed=args.speed) as api:
        api.default_audio_ms, api.default_chunk_ms = args.audio_ms, args.chunk_ms
        api.received = _Discard()  # type: ignore[assignment]
        api.sent = _Discard()  # type: ignore[assignment]
        print(f"port {api.port}", flush=True)
        sys.stdin.read()


class _Discard(list):  # type: ignore[type-arg]
    def append(self, _: Any) -> None:
        pass


if __name__ == "__main__":
    main()
