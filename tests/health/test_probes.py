"""Health probes: anonymous and cheap; /health/ready checks each dependency with a deadline."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from controlplane import health

pytestmark = pytest.mark.django_db


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections and never answers (a hung dependency)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()


@pytest.fixture
def closed_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now: connections are refused at once
    return f"redis://127.0.0.1:{port}/0"


def test_health_and_live_answer_anonymously(client: Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/health/live").json() == {"status": "alive"}
    assert "no-cache" in client.get("/health").headers["Cache-Control"]


def test_ready_checks_database_broker_and_channel_layer(client: Client) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok", "channel_layer": "ok"}}


def test_ready_is_503_naming_an_unreachable_broker(client: Client, settings: Any, closed_port: str) -> None:
    settings.CELERY_BROKER_URL = closed_port
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready" and body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("ConnectionError")


def test_ready_is_503_naming_an_unreachable_channel_layer(client: Client, settings: Any, closed_port: str) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [closed_port]}}}
    response = client.get("/health/ready")
    assert response.status_code == 503 and response.json()["checks"]["channel_layer"].startswith("ConnectionError")


def test_a_hung_dependency_fails_its_check_instead_of_hanging_the_probe(settings: Any, silent_server: str) -> None:
    settings.CELERY_BROKER_URL = silent_server
    checks = health.run_checks(timeout=0.3)
    assert checks["broker"] == "timed out after 0.3 s"
    assert checks["database"] == "ok"


def test_a_hung_redis_is_given_up_by_the_socket_timeout(settings: Any, silent_server: str) -> None:
    settings.CELERY_BROKER_URL = silent_server
    checks = health.run_checks()
    assert checks["broker"].startswith("TimeoutError"), checks
