"""Personas of the fleet tests: online workers, a dispatched job, the echo entry point."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from workers.models import Job, Worker, WorkerStatus
from workers.node import node, options_from_env


@pytest.fixture
def online_worker(db: Any) -> Callable[..., Worker]:
    """Register a worker row as a live node's heartbeat would keep it."""

    def make(worker_id: str, *, capacity: int = 10, weight: int = 1, load: float = 0.0, **fields: Any) -> Worker:
        from celery.utils.nodenames import worker_direct

        return Worker.objects.create(
            worker_id=worker_id, hostname=worker_id.partition("@")[2], queue=worker_direct(worker_id).name,
            capacity=capacity, weight=weight, load=load, status=WorkerStatus.ONLINE,
            last_heartbeat_at=timezone.now(), **fields,
        )

    return make


@pytest.fixture
def busy(db: Any) -> Callable[[Worker, int], None]:
    """Give a worker n running jobs."""

    def make(worker: Worker, n: int, agent: Any = None) -> None:
        for i in range(n):
            Job.objects.create(agent=agent, room_name=f"busy-{worker.pk}-{i}", status="running", assigned_worker=worker,
                               lease_expires_at=timezone.now() + timedelta(seconds=60))

    return make


@pytest.fixture
def echo_node(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """This test process acting as worker node `unit@test`, running the echo entry point."""
    saved = (node.worker_id, node.options, node.draining)
    node.worker_id = "unit@test"
    node.options = options_from_env(entry_point="sessions.entrypoints:echo_session", drain_timeout=5)
    node.draining = False
    yield node
    from workers import registration

    if registration._drain_timer is not None:  # a drain started here must not end a later test's sessions
        registration._drain_timer.cancel()
    node.worker_id, node.options, node.draining = saved


@pytest.fixture(scope="session", autouse=True)
def _drop_stray_connections(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """Session-host and worker-subprocess connections would keep the test database from
    being dropped at the end; end them first."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql" or not str(connection.settings_dict["NAME"]).startswith("test_"):
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
