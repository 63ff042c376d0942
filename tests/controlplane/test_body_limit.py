"""Request bodies over REQUEST_BODY_MAX_BYTES get 413 before they are buffered: from the real
web server (daphne, as production runs it) and from the ASGI application under any server."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.asgi import application
from tests.dashboard.live_server import DaphneServer

LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def server(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaphneServer]:
    running = DaphneServer(tmp_path_factory.mktemp("web"), REQUEST_BODY_MAX_BYTES=str(LIMIT)).start()
    yield running
    running.stop()


def raw_request(port: int, head: bytes, body_chunks: Iterator[bytes]) -> bytes:
    """Send a request as a client would, keep sending while the server reads, return its answer
    once it is all in (its Content-Length), as a client would: the server keeps the connection
    for a while after a 413 (web_server.LINGER_SECONDS) to drain what is still being sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed once it had answered; the answer is in our buffer
        answer = b""
        try:
            while not answer_complete(answer) and (data := sock.recv(65536)):
                answer += data
        except ConnectionResetError:
            pass
        return answer


def answer_complete(answer: bytes) -> bool:
    headers, separator, body = answer.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in headers.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False  # no length: the answer ends when the server closes


def test_a_declared_600_mb_body_is_refused_with_413_at_once(server: DaphneServer) -> None:
    size = 600 * 1024 * 1024
    head = b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % size
    sent = iter([b"\0" * 65536] * 16)  # 1 MB of it; the answer does not wait for the rest
    answer = raw_request(server.port, head, sent)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"REQUEST_BODY_MAX_BYTES" in answer and str(LIMIT).encode() in answer


def test_a_chunked_body_is_counted_and_refused_past_the_limit(server: DaphneServer) -> None:
    head = b"POST /api/v1/jobs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"x" * 65536
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * 40 + [b"0\r\n\r\n"]  # 2.5 MB, no Content-Length
    answer = raw_request(server.port, head, iter(chunks))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]


def test_a_body_under_the_limit_reaches_the_application(server: DaphneServer) -> None:
    response = httpx.post(f"{server.url}/api/v1/jobs/", content=b"{" + b" " * (LIMIT // 2) + b"}",
                          headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 401  # the API answered: no key


def test_the_server_keeps_serving_after_refusing(server: DaphneServer) -> None:
    head = b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1)
    assert raw_request(server.port, head, iter([b"\0" * 1024])).startswith(b"HTTP/1.1 413 ")
    assert httpx.get(f"{server.url}/health", timeout=5).json() == {"status": "ok"}


# --- the ASGI middleware, for any server ---------------------------------------------------
@pytest.fixture
def asgi_client(settings: Any) -> httpx.AsyncClient:
    settings.REQUEST_BODY_MAX_BYTES = LIMIT
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver")


@pytest.mark.django_db
async def test_the_application_refuses_a_declared_length_over_the_limit(asgi_client: httpx.AsyncClient) -> None:
    async with asgi_client as client:
        response = await client.post("/api/v1/jobs/", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413 and "REQUEST_BODY_MAX_BYTES" in response.json()["detail"]


@pytest.mark.django_db
async def test_the_application_counts_a_streamed_body(asgi_client: httpx.AsyncClient) -> None:
    async def stream() -> Any:
        for _ in range(40):
            yield b"x" * 65536

    async with asgi_client as client:
        response = await client.post("/api/v1/jobs/", content=stream())
    assert response.status_code == 413


@pytest.mark.django_db
async def test_the_application_refuses_a_content_length_that_is_not_a_number(asgi_client: httpx.AsyncClient) -> None:
    async with asgi_client as client:
        response = await client.post("/api/v1/jobs/", content=b"{}", headers={"Content-Length": "lots"})
    assert response.status_code == 400 and "Content-Length" in response.json()["detail"]
