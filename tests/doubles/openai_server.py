"""A loopback test double of the OpenAI HTTP API that speaks the real wire protocol.

    with OpenAIDouble() as api:
        api.chat.push(Reply.tool("get_weather", {"city": "Paris"}), Reply.message("Sunny."))
        api.transcripts.push("what is the weather in paris")
        client = AsyncOpenAI(base_url=api.base_url, api_key="test")

Endpoints: `POST /v1/chat/completions` (SSE when `stream`, tool-call deltas, usage chunk
when `stream_options.include_usage`; plain JSON otherwise), `POST
/v1/audio/transcriptions` (multipart; returns the next scripted text),
`POST /v1/audio/speech` (streams raw PCM, 24 kHz s16le mono, chunked).

Each endpoint has a FIFO of scripted replies; when it is empty the default applies
(chat: `default_chat_text`; transcription: `default_transcript`; speech: a tone whose
length follows the text). A reply can be a failure mode instead: `Reply.error(500)`,
`Reply.stall(seconds)`, `Reply.garbage()`. Every request is recorded in `requests`.
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SPEECH_SAMPLE_RATE = 24_000


@dataclass
class Reply:
    """One scripted answer. `kind` is text | tool | error | stall | garbage."""

    kind: str = "text"
    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    status: int = 500
    stall_s: float = 0.0
    chunk_delay_s: float = 0.0
    # stall after this many streamed chunks instead of before the response (stall mode)
    stall_after_chunks: int | None = None
    prompt_tokens: int = 11
    completion_tokens: int | None = None
    pcm: bytes | None = None  # speech: exact PCM to return

    @classmethod
    def message(cls, text: str, **kw: Any) -> "Reply":
        return cls(kind="text", text=text, **kw)

    @classmethod
    def tool(cls, name: str, arguments: dict[str, Any] | str, **kw: Any) -> "Reply":
        return cls(kind="tool", tool_calls=[(name, arguments)], **kw)

    @classmethod
    def tools(cls, *calls: tuple[str, dict[str, Any] | str], **kw: Any) -> "Reply":
        return cls(kind="tool", tool_calls=list(calls), **kw)

    @classmethod
    def error(cls, status: int = 500, message: str = "scripted failure") -> "Reply":
        return cls(kind="error", status=status, text=message)

    @classmethod
    def stall(cls, seconds: float = 30.0, after_chunks: int | None = None) -> "Reply":
        return cls(kind="stall", stall_s=seconds, stall_after_chunks=after_chunks)

    @classmethod
    def garbage(cls) -> "Reply":
        return cls(kind="garbage")


class Script:
    """A thread-safe FIFO of replies (or plain strings / callables) for one endpoint."""

    def __init__(self) -> None:
        self._q: deque[Any] = deque()
        self._lock = threading.Lock()

    def push(self, *replies: Any) -> None:
        with self._lock:
            self._q.extend(replies)

    def pop(self) -> Any | None:
        with self._lock:
            return self._q.popleft() if self._q else None

    def __len__(self) -> int:
        return len(self._q)

    def clear(self) -> None:
        with self._lock:
            self._q.clear()


@dataclass
class RecordedRequest:
    path: str
    body: dict[str, Any]
    at: float
    file_bytes: int = 0


def tone_pcm(duration_s: float, freq: float = 220.0, rate: int = SPEECH_SAMPLE_RATE,
             amplitude: float = 0.3) -> bytes:
    import numpy as np

    n = int(duration_s * rate)
    t = np.arange(n, dtype=np.float32) / rate
    return (np.sin(2 * math.pi * freq * t) * amplitude * 32767).astype("<i2").tobytes()


class OpenAIDouble:
    def __init__(self, *, default_chat_text: str = "Okay.", default_transcript: str = "",
                 speech_ms_per_char: float = 30.0, speech_chunk_bytes: int = 4800,
                 model: str = "gpt-4o-mini") -> None:
        self.chat = Script()
        self.transcripts = Script()
        self.speech = Script()
        self.requests: list[RecordedRequest] = []
        # (path, lower-cased headers) of every request that reached the server, any route
        self.arrivals: list[tuple[str, dict[str, str]]] = []
        self.default_chat_text = default_chat_text
        self.default_transcript = default_transcript
        self.speech_ms_per_char = speech_ms_per_char
        self.speech_chunk_bytes = speech_chunk_bytes
        self.model = model
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> "OpenAIDouble":
        double = self

        class Handler(_Handler):
            api = double

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # let stalled handlers finish
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "OpenAIDouble":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def requests_to(self, path_suffix: str) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.path.endswith(path_suffix)]

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def _wait(self, seconds: float) -> None:
        self._release.wait(seconds)


def _sse(obj: Any) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


class _Handler(BaseHTTPRequestHandler):
    api: OpenAIDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing -------------------------------------------------------------------
    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _error(self, reply: Reply) -> None:
        self._json(reply.status, {"error": {"message": reply.text, "type": "server_error",
                                            "param": None, "code": None}})

    def _failure(self, reply: Reply | None) -> bool:
        """Handle the failure modes that happen before any body is sent."""
        if reply is None:
            return False
        if reply.kind == "error":
            self._error(reply)
            return True
        if reply.kind == "stall" and reply.stall_after_chunks is None:
            self.api._wait(reply.stall_s)
            self._json(200, {})
            return True
        return False

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        with self.api._lock:
            self.api.arrivals.append((path, {k.lower(): v for k, v in self.headers.items()}))
        raw = self._body()
        try:
            if path.endswith("/chat/completions"):
                self._chat(json.loads(raw or b"{}"))
            elif path.endswith("/audio/transcriptions"):
                self._transcription(raw)
            elif path.endswith("/audio/speech"):
                self._speech(json.loads(raw or b"{}"))
            else:
                self._json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- chat -----------------------------------------------------------------------
    def _chat(self, body: dict[str, Any]) -> None:
        api = self.api
        api._record(RecordedRequest(path="/v1/chat/completions", body=body, at=time.monotonic()))
        item = api.chat.pop()
        if callable(item):
            item = item(body)
        reply = Reply.message(item) if isinstance(item, str) else item
        if self._failure(reply):
            return
        if reply is None:
            reply = Reply.message(api.default_chat_text)
        if not body.get("stream"):
            self._chat_json(body, reply)
            return
        self._start_chunked("text/event-stream")
        if reply.kind == "garbage":
            self._chunk(b"data: {this is not json\n\n")
            self._chunk(b"data: [DONE]\n\n")
            self._end_chunked()
            return
        base = {"id": "chatcmpl-double", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body.get("model", api.model),
                "system_fingerprint": "fp_double"}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                          "finish_reason": finish}]}

        sent = 0

        def send(obj: dict[str, Any]) -> None:
            nonlocal sent
            if reply.kind == "stall" and reply.stall_after_chunks is not None and sent == reply.stall_after_chunks:
                api._wait(reply.stall_s)
            self._chunk(_sse(obj))
            sent += 1
            if reply.chunk_delay_s:
                time.sleep(reply.chunk_delay_s)

        send(chunk({"role": "assistant", "content": "", "refusal": None}))
        pieces = _split_words(reply.text)
        for piece in pieces:
            send(chunk({"content": piece}))
        for i, (name, args) in enumerate(reply.tool_calls):
            args_s = args if isinstance(args, str) else json.dumps(args)
            send(chunk({"tool_calls": [{"index": i, "id": f"call_{i}_{name}", "type": "function",
                                        "function": {"name": name, "arguments": ""}}]}))
            for j in range(0, len(args_s), 7):
                send(chunk({"tool_calls": [{"index": i, "function": {"arguments": args_s[j:j + 7]}}]}))
        send(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            completion = reply.completion_tokens if reply.completion_tokens is not None else max(1, len(pieces))
            send({**base, "choices": [], "usage": {
                "prompt_tokens": reply.prompt_tokens, "completion_tokens": completion,
                "total_tokens": reply.prompt_tokens + completion}})
        self._chunk(b"data: [DONE]\n\n")
        self._end_chunked()

    def _chat_json(self, body: dict[str, Any], reply: Reply) -> None:
        if reply.kind == "garbage":
            data = b"{not json"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        tool_calls = [{"id": f"call_{i}_{n}", "type": "function",
                       "function": {"name": n, "arguments": a if isinstance(a, str) else json.dumps(a)}}
                      for i, (n, a) in enumerate(reply.tool_calls)]
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        completion = reply.completion_tokens or max(1, len(reply.text.split()))
        self._json(200, {"id": "chatcmpl-double", "object": "chat.completion", "created": int(time.time()),
                         "model": body.get("model", self.api.model),
                         "choices": [{"index": 0, "message": message, "logprobs": None,
                                      "finish_reason": "tool_calls" if tool_calls else "stop"}],
                         "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": completion,
                                   "total_tokens": reply.prompt_tokens + completion}})

    # -- transcription ----------------------------------------------------------------
    def _transcription(self, raw: bytes) -> None:
        api = self.api
        fields, file_bytes = _parse_multipart(self.headers.get("Content-Type", ""), raw)
        rec = RecordedRequest(path="/v1/audio/transcriptions", body=fields, at=time.monotonic(),
                              file_bytes=file_bytes)
        api._record(rec)
        item = api.transcripts.pop()
        if callable(item):
            item = item(rec)
        reply = Reply.message(item) if isinstance(item, str) else item
        if self._failure(reply):
            return
        if reply is not None and reply.kind == "garbage":
            data = b"<html>oops</html>"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        text = reply.text if reply is not None else api.default_transcript
        if fields.get("response_format") == "text":
            data = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._json(200, {"text": text, "usage": {"type": "duration", "seconds": 1}})

    # -- speech -------------------------------------------------------------------------
    def _speech(self, body: dict[str, Any]) -> None:
        api = self.api
        api._record(RecordedRequest(path="/v1/audio/speech", body=body, at=time.monotonic()))
        item = api.speech.pop()
        if callable(item):
            item = item(body)
        reply = item if isinstance(item, Reply) else None
        if self._failure(reply):
            return
        self._start_chunked("audio/pcm" if body.get("response_format") == "pcm" else "application/octet-stream")
        if reply is not None and reply.kind == "garbage":
            self._chunk(b"\x01\x02\x03")  # an odd byte count: not whole s16 samples
            self._end_chunked()
            return
        if reply is not None and reply.pcm is not None:
            pcm = reply.pcm
        else:
            text = str(body.get("input", ""))
            pcm = tone_pcm(max(0.1, len(text) * api.speech_ms_per_char / 1000.0))
        step = api.speech_chunk_bytes
        for i in range(0, len(pcm), step):
            if reply is not None and reply.kind == "stall" and reply.stall_after_chunks == i // step:
                api._wait(reply.stall_s)
            self._chunk(pcm[i:i + step])
            if reply is not None and reply.chunk_delay_s:
                time.sleep(reply.chunk_delay_s)
        self._end_chunked()


def _split_words(text: str) -> list[str]:
    out: list[str] = []
    word = ""
    for ch in text:
        word += ch
        if ch == " ":
            out.append(word)
            word = ""
    if word:
        out.append(word)
    return out


def _parse_multipart(content_type: str, raw: bytes) -> tuple[dict[str, Any], int]:
    msg = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    fields: dict[str, Any] = {}
    file_bytes = 0
    if not msg.is_multipart():
        return fields, 0
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename():
            file_bytes = len(payload)
            fields[str(name)] = {"filename": part.get_filename(), "bytes": len(payload),
                                 "head": payload[:12]}
        else:
            fields[str(name)] = payload.decode()
    return fields, file_bytes


