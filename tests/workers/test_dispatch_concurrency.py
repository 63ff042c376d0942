"""Twenty identical requests with one Idempotency-Key, at once, against PostgreSQL."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from workers.dispatch import job_dispatch
from workers.models import Job


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_identical_dispatches_make_one_job(active_agent: Any, api_key_factory: Any) -> None:
    key, _ = api_key_factory("jobs:write")
    barrier = threading.Barrier(20)
    results: list[str] = []
    errors: list[BaseException] = []

    def post() -> None:
        try:
            barrier.wait()
            job = job_dispatch(agent_id=active_agent.agent_id, room="same-room", metadata={"n": 1}, transport="local",
                               idempotency_key="one-key", api_key=key)
            results.append(job.pk)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 20 and len(set(results)) == 1
    assert Job.objects.filter(idempotency_key="one-key").count() == 1
