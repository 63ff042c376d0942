"""What the anonymous probes give away: /metrics behind METRICS_TOKEN, readiness without
exception text."""
from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from workers.models import Worker

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-0123456789"


@pytest.fixture
def named_worker(db: Any) -> Worker:
    return Worker.objects.create(worker_id="celery@billing-node-7", hostname="billing-node-7", queue="q.dq2",
                                 capacity=3, last_heartbeat_at=timezone.now())


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer"])
def test_metrics_with_a_token_set_refuses_scrapers_without_it(client: Client, settings: Any, named_worker: Worker,
                                                              authorization: str | None) -> None:
    settings.METRICS_TOKEN = TOKEN
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert b"billing-node-7" not in response.content and b"METRICS_TOKEN" in response.content


def test_metrics_with_the_token_answers(client: Client, settings: Any, named_worker: Worker) -> None:
    settings.METRICS_TOKEN = TOKEN
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and b"billing-node-7" in response.content


def test_metrics_without_a_token_setting_stay_anonymous(client: Client, settings: Any, named_worker: Worker) -> None:
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200


def test_ready_names_the_failed_dependency_but_not_its_exception_text(client: Client, settings: Any,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
    with caplog.at_level(logging.WARNING, logger="controlplane.health"):
        response = client.get("/health/ready")
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker.startswith("ConnectionError") and "server log" in broker
    assert str(port) not in response.content.decode() and "127.0.0.1" not in response.content.decode()
    assert str(port) in caplog.text  # the details are for the operator's log
