"""A real HTTP server on loopback that records webhook requests and answers from a script."""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.helpers import wait_for


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float


class WebhookReceiver:
    def __init__(self, *codes: int) -> None:
        self.requests: list[Received] = []
        self._codes: deque[int] = deque(codes)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    code = receiver._codes.popleft() if receiver._codes else 200
                    receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body, code, time.monotonic()))
                self.send_response(code)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in list(self.requests) if json.loads(r.body).get("type") == event_type]

    def wait_for(self, predicate: Any, timeout: float = 30.0, what: str = "requests") -> None:
        wait_for(predicate, timeout=timeout, interval=0.05,
                 what=lambda: f"{what}; got {[r.body[:120] for r in self.requests]}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
