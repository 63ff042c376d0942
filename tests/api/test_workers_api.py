"""Workers API: the fleet list and draining a worker from anywhere."""
from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from workers.models import Worker, WorkerStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_workers(worker: Worker) -> list[Worker]:
    other = Worker.objects.create(
        worker_id="celery@node-2", hostname="node-2", queue="celery@node-2.dq2", capacity=20, load=0.5, active_jobs=3,
        last_heartbeat_at=timezone.now(), status=WorkerStatus.OFFLINE,
    )
    return [worker, other]


def test_list_shows_each_worker_with_its_load(api_client: APIClient, two_workers: list[Worker]) -> None:
    body = api_client.get("/api/v1/workers/").json()
    assert body["count"] == 2
    node2 = next(w for w in body["results"] if w["worker_id"] == "celery@node-2")
    assert node2["capacity"] == 20 and node2["load"] == 0.5 and node2["active_jobs"] == 3 and node2["status"] == "offline"
    assert node2["circuit_state"] == "closed"


def test_list_filters_by_status(api_client: APIClient, two_workers: list[Worker]) -> None:
    online = api_client.get("/api/v1/workers/?status=online").json()
    assert [w["worker_id"] for w in online["results"]] == ["celery@node-1"]
    response = api_client.get("/api/v1/workers/?status=asleep")
    assert response.status_code == 400 and "status" in response.json()


def test_drain_marks_the_worker_draining(api_client: APIClient, worker: Worker) -> None:
    response = api_client.post(f"/api/v1/workers/{worker.worker_id}/drain")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "draining"
    assert Worker.objects.get(pk=worker.pk).status == WorkerStatus.DRAINING


def test_drain_of_an_unknown_worker_is_404(api_client: APIClient, db: Any) -> None:
    response = api_client.post("/api/v1/workers/celery@nowhere/drain")
    assert response.status_code == 404 and "celery@nowhere" in response.json()["detail"]
