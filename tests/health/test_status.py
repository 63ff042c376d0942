"""/status: JSON detail of the fleet and the queue, for a login or a key with `read`."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

from workers.dispatch import job_dispatch
from workers.models import Worker, WorkerStatus

pytestmark = pytest.mark.django_db


def test_anonymous_requests_get_401_with_a_bearer_challenge(anonymous: APIClient) -> None:
    response = anonymous.get("/status")
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Bearer"


def test_a_key_without_read_gets_403(client_with_scopes: Callable[..., APIClient]) -> None:
    response = client_with_scopes("jobs:write").get("/status")
    assert response.status_code == 403 and "read" in response.json()["detail"]


def test_a_logged_in_user_with_the_read_permissions_may_read_it(django_user_model: Any) -> None:
    user = django_user_model.objects.create_user(username="viewer", password="viewer-pass-123")
    user.user_permissions.set(Permission.objects.filter(
        codename__in=["view_agent", "view_tool", "view_job", "view_worker", "view_agentsession"]))
    client = APIClient()
    client.force_login(user)
    assert client.get("/status").status_code == 200


def test_a_logged_in_user_without_them_gets_403_and_no_host_names(django_user_model: Any, worker_row: Worker) -> None:
    """Host names and versions of the fleet are not for every account (issue 12, finding 9)."""
    user = django_user_model.objects.create_user(username="visitor", password="visitor-pass-123", is_staff=True)
    client = APIClient()
    client.force_login(user)
    response = client.get("/status")
    assert response.status_code == 403 and "read" in response.json()["detail"]
    assert worker_row.hostname not in response.content.decode()


@pytest.fixture
def worker_row(db: Any) -> Worker:
    return Worker.objects.create(worker_id="celery@secret-host", hostname="secret-host", queue="q.dq2", last_heartbeat_at=timezone.now())


def test_it_details_workers_queue_jobs_sessions_and_capacity(reader: APIClient, active_agent: Any, settings: Any) -> None:
    settings.JOB_QUEUE_LIMIT = 50
    for i, priority in enumerate((1, 5, 5)):  # before any worker exists, so they stay queued
        job_dispatch(agent_id="support", room=f"r{i}", priority=priority)
    now = timezone.now()
    Worker.objects.create(worker_id="celery@a", hostname="a", queue="a.dq2", capacity=4, load=0.5, active_jobs=1, last_heartbeat_at=now)
    Worker.objects.create(worker_id="celery@b", hostname="b", queue="b.dq2", capacity=6, status=WorkerStatus.DRAINING, last_heartbeat_at=now)
    Worker.objects.create(worker_id="celery@c", hostname="c", queue="c.dq2", capacity=9, status=WorkerStatus.OFFLINE)

    response = reader.get("/status")
    assert response.status_code == 200
    body = response.json()
    assert body["workers"]["by_status"] == {"online": 1, "unready": 0, "draining": 1, "offline": 1}
    assert body["workers"]["capacity"] == 4 and body["workers"]["active_jobs"] == 1
    assert [w["worker_id"] for w in body["workers"]["nodes"]] == ["celery@a", "celery@b"]
    assert body["queue"]["depth"] == 3 and body["queue"]["limit"] == 50
    assert body["queue"]["by_priority"] == {"1": 1, "5": 2} and body["queue"]["oldest_pending_age_seconds"] >= 0
    assert body["jobs"]["pending"] == 3 and body["sessions"]["active"] == 0
    assert body["capacity"]["desired_capacity"] >= 3 and body["capacity"]["pending_jobs"] == 3
    assert body["dispatch_strategy"] == settings.DISPATCH_STRATEGY
