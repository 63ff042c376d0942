"""A real daphne server's status line carries the standard reason phrase (429 included)."""
from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.live_server import DaphneServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def status_line(port: int, method: str, path: str, headers: dict[str, str], body: str | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, response.reason
    finally:
        conn.close()


def test_a_full_queue_answers_429_too_many_requests(tmp_path: Path, active_agent: Any, api_key_factory: Any) -> None:
    _, raw = api_key_factory("jobs:write", "read")
    server = DaphneServer(tmp_path, JOB_QUEUE_LIMIT="1").start()  # no worker: the first job waits
    try:
        headers = {"Authorization": f"Bearer {raw}", "Content-Type": "application/json"}
        body = '{"agent": "support", "room": "r1", "transport": "local"}'
        assert status_line(server.port, "POST", "/api/v1/jobs/", headers, body) == (201, "Created")
        assert status_line(server.port, "POST", "/api/v1/jobs/", headers, body) == (429, "Too Many Requests")
        assert status_line(server.port, "POST", "/api/v1/jobs/", {**headers, "Authorization": "Bearer nope"}, body)[1] \
            in ("Unauthorized", "Forbidden")
    finally:
        server.stop()
