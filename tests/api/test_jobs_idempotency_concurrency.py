"""20 identical dispatch requests at once, through HTTP on real threads → one job.

With DATABASE_URL set this runs on PostgreSQL, where the requests truly overlap and the
unique (api_key, idempotency_key) constraint settles the race; in the embedded mode
SQLite serialises the writers.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections
from rest_framework.test import APIClient

from agents.models import Agent
from workers.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

N = 20


def _concurrently(n: int, call: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - reported by the assertions below
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_twenty_concurrent_identical_requests_make_one_job(api_key_factory: Callable[..., Any], active_agent: Agent) -> None:
    _, raw = api_key_factory("jobs:write", name="app")
    body = {"agent": "support", "room": "call-7", "metadata": {"order": 7}, "priority": 3}

    def post() -> Any:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="call-7-dispatch")

    responses = _concurrently(N, post)
    statuses = sorted(r.status_code if not isinstance(r, Exception) else repr(r) for r in responses)
    assert statuses == [200] * (N - 1) + [201], statuses
    assert len({r.json()["job_id"] for r in responses}) == 1
    assert Job.objects.count() == 1


def test_concurrent_requests_with_distinct_keys_make_distinct_jobs(api_key_factory: Callable[..., Any], active_agent: Agent) -> None:
    _, raw = api_key_factory("jobs:write", name="app")
    counter = iter(range(N))
    lock = threading.Lock()

    def post() -> Any:
        with lock:
            i = next(counter)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client.post("/api/v1/jobs/", {"agent": "support", "room": f"r{i}"}, format="json", HTTP_IDEMPOTENCY_KEY=f"k{i}")

    responses = _concurrently(N, post)
    assert [getattr(r, "status_code", r) for r in responses] == [201] * N
    assert Job.objects.count() == N
