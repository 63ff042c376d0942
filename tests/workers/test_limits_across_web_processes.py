"""The per-key rate limit and the queue limit hold across two real daphne web processes.

Both processes share PostgreSQL (the queue's truth) and Redis (the rate-limit buckets), so a
client alternating between them gets no more than one budget.
"""
from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.live_server import DaphneServer, require_services
from workers.models import Job, JobStatus

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def post_job(port: int, raw_key: str, room: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        body = json.dumps({"agent": "support", "room": room, "transport": "local"})
        conn.request("POST", "/api/v1/jobs/", body=body, headers={"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"{}")
    finally:
        conn.close()


@pytest.fixture
def two_web_processes(tmp_path: Path) -> Any:
    require_services()
    # 2 per minute: the bucket refills one token each 30 s, far longer than this test's posts take
    servers = [DaphneServer(tmp_path, DISPATCH_RATE_LIMIT_PER_MINUTE="2", JOB_QUEUE_LIMIT="1000") for _ in range(2)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_the_rate_limit_is_one_budget_across_two_web_processes(two_web_processes: list[DaphneServer], active_agent: Any,
                                                                api_key_factory: Any) -> None:
    a, b = two_web_processes
    _, raw = api_key_factory("jobs:write", "read")
    _, other = api_key_factory("jobs:write", "read", name="other")
    answers = [post_job(server.port, raw, f"r{i}") for i, server in enumerate([a, b, a, b])]
    assert [status for status, _, _ in answers] == [201, 201, 429, 429]
    for _, headers, body in answers[2:]:
        assert 1 <= int(headers["Retry-After"]) <= 30
        assert "rate limit" in json.dumps(body)
    assert Job.objects.count() == 2  # a refused dispatch writes nothing
    assert post_job(b.port, other, "o1")[0] == 201  # another key has its own budget


def test_the_queue_limit_holds_across_two_web_processes(tmp_path: Path, active_agent: Any, api_key_factory: Any) -> None:
    require_services()
    _, raw = api_key_factory("jobs:write", "read")
    servers = [DaphneServer(tmp_path, JOB_QUEUE_LIMIT="2", DISPATCH_RATE_LIMIT_PER_MINUTE="1000") for _ in range(2)]
    try:
        for server in servers:
            server.start()
        a, b = servers
        answers = [post_job(server.port, raw, f"q{i}") for i, server in enumerate([a, b, a, b])]  # no worker: jobs wait
        assert [status for status, _, _ in answers] == [201, 201, 429, 429]
        assert all(int(headers["Retry-After"]) >= 1 for _, headers, _ in answers[2:])
        assert Job.objects.filter(status=JobStatus.PENDING).count() == 2
    finally:
        for server in servers:
            server.stop()
