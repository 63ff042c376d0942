"""A small real HTTP server on loopback that records requests (the HTTP tools' far end)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_first = 0  # answer 503 to this many requests first


class _Handler(BaseHTTPRequestHandler):
    server_version = "ToolDouble/1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _handle(self) -> None:
        rec: Recorder = self.server.recorder  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        rec.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers),
             "body": json.loads(body) if body else None}
        )
        if rec.fail_first > 0:
            rec.fail_first -= 1
            return self._send(503, "text/plain", b"busy")
        path = self.path.split("?")[0]
        if path == "/json":
            return self._send(200, "application/json", json.dumps({"output": "sunny in Paris"}).encode())
        if path == "/text":
            return self._send(200, "text/plain", b"plain answer")
        if path == "/big":  # ?bytes=N[&unsized=1]: a large answer, its size declared or not
            return self._big(self.path)
        if path == "/bad":
            return self._send(422, "text/plain", b"city unknown")
        if path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://10.0.0.1/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self._send(404, "text/plain", b"no such path")

    def _big(self, raw_path: str) -> None:
        query = parse_qs(urlsplit(raw_path).query)
        size = int(query.get("bytes", ["0"])[0])
        unsized = query.get("unsized", ["0"])[0] == "1"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if not unsized:  # HTTP/1.0 without a length: the body runs until the connection closes
            self.send_header("Content-Length", str(size))
        self.end_headers()
        block = b"x" * 65536
        sent = 0
        try:
            while sent < size:
                part = block[: min(len(block), size - sent)]
                self.wfile.write(part)
                sent += len(part)
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: the point
            pass

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class ToolServer:
    def __init__(self) -> None:
        self.recorder = Recorder()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.recorder = self.recorder  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "ToolServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
