from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from workers.models import Worker, WorkerStatus

pytestmark = pytest.mark.django_db(transaction=True)


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_registered_node_is_live_and_ready(health_server_url: str, echo_node: Any, online_worker: Any) -> None:
    online_worker(echo_node.worker_id)
    assert get(f"{health_server_url}/health/live")[0] == 200
    status, body = get(f"{health_server_url}/health/ready")
    assert status == 200 and body["database"] == "ok" and body["heartbeat"] == "ok"


def test_a_draining_node_is_live_but_not_ready(health_server_url: str, echo_node: Any, online_worker: Any) -> None:
    online_worker(echo_node.worker_id)
    echo_node.draining = True
    assert get(f"{health_server_url}/health/live")[0] == 200
    status, body = get(f"{health_server_url}/health/ready")
    assert status == 503 and body["draining"] is True


def test_a_node_marked_offline_is_not_ready(health_server_url: str, echo_node: Any, online_worker: Any) -> None:
    online_worker(echo_node.worker_id)
    Worker.objects.filter(pk=echo_node.worker_id).update(status=WorkerStatus.OFFLINE)
    assert get(f"{health_server_url}/health/ready")[0] == 503


def test_unknown_paths_are_404(health_server_url: str) -> None:
    assert get(f"{health_server_url}/nope")[0] == 404
