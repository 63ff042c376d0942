"""Personas of the fleet tests: busy workers, the echo node, the fleet's short intervals,
a node's health server (online workers and the fleet itself are the suite's, in tests/conftest.py)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from workers import dispatch
from workers.health_server import start_health_server, stop_health_server
from workers.models import Job, Worker


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Tasks sent to workers' queues (job id, worker id), instead of the broker."""
    tasks: list[tuple[str, str]] = []
    monkeypatch.setattr(dispatch, "send_to_worker", lambda job_id, worker_id: tasks.append((job_id, worker_id)))
    return tasks


@pytest.fixture
def busy(db: Any) -> Callable[[Worker, int], None]:
    """Give a worker n running jobs."""

    def make(worker: Worker, n: int, agent: Any = None) -> None:
        for i in range(n):
            Job.objects.create(agent=agent, room_name=f"busy-{worker.pk}-{i}", status="running", assigned_worker=worker,
                               lease_expires_at=timezone.now() + timedelta(seconds=60))

    return make


@pytest.fixture
def echo_node(as_node: Callable[..., Any]) -> Any:
    """This test process acting as worker node `unit@test`, running the echo entry point."""
    return as_node("unit@test", entry_point="sessions.entrypoints:echo_session")


@pytest.fixture
def health_server_url(echo_node: Any) -> Iterator[str]:
    """The echo node's health server, on an ephemeral port."""
    server = start_health_server(0, host="127.0.0.1")
    yield f"http://127.0.0.1:{server.server_address[1]}"
    stop_health_server()


@pytest.fixture
def fleet_settings(settings: Any, empty_broker: None) -> None:
    """This process on the short lease and heartbeat the fleet's workers run with
    (`tests.workers.fleet.FAST`), on an empty broker."""
    assert django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), "set DATABASE_URL to PostgreSQL"
    settings.JOB_LEASE_SECONDS = 3
    settings.WORKER_HEARTBEAT_SECONDS = 0.5
    settings.WORKER_OFFLINE_AFTER_SECONDS = 3


@pytest.fixture(scope="session", autouse=True)
def _drop_stray_connections(drop_stray_connections: None) -> None:
    """Every fleet test may leave session-host or worker connections behind."""
