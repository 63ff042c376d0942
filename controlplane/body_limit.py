"""Refuse HTTP request bodies over REQUEST_BODY_MAX_BYTES with 413, in front of Django.

Django's ASGIHandler reads the whole body before any view or DATA_UPLOAD_MAX_MEMORY_SIZE
check runs, so the limit has to sit outside it: a declared Content-Length over the limit is
refused before the body is read at all, and a body without one (chunked) is counted as it
streams in and refused once it passes the limit.

daphne itself queues a request's whole body for the application before the application
runs (`daphne.http_protocol.WebRequest.process`); `controlplane.web_server` bounds that
part. This middleware covers every other ASGI server and is the second line under daphne.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyTooLarge(Exception):
    pass


def too_large_body(limit: int) -> bytes:
    return json.dumps({"detail": f"Request body too large: the limit is {limit} bytes (REQUEST_BODY_MAX_BYTES)."}).encode()


def declared_length(scope: Scope) -> int | None:
    """Content-Length as sent, None when absent; -1 when it is not a number."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes if self.max_bytes is not None else settings.REQUEST_BODY_MAX_BYTES
        declared = declared_length(scope)
        if declared == -1:
            await _answer(send, 400, json.dumps({"detail": "Content-Length must be a number of bytes."}).encode())
            return
        if declared is not None and declared > limit:
            await _answer(send, 413, too_large_body(limit))
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:  # Django reads the body before it answers, so this is the usual case
                await _answer(send, 413, too_large_body(limit))


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
