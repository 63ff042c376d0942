from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from workers.health_server import start_health_server, stop_health_server
from workers.models import Worker, WorkerStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def base_url(echo_node: Any) -> Iterator[str]:
    server = start_health_server(0, host="127.0.0.1")
    yield f"http://127.0.0.1:{server.server_address[1]}"
    stop_health_server()


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_registered_node_is_live_and_ready(base_url: str, echo_node: Any, online_worker: Any) -> None:
    online_worker(echo_node.worker_id)
    assert get(f"{base_url}/health/live")[0] == 200
    status, body = get(f"{base_url}/health/ready")
    assert status == 200 and body["database"] == "ok" and body["heartbeat"] == "ok"


def test_a_draining_node_is_live_but_not_ready(base_url: str, echo_node: Any, online_worker: Any) -> None:
    online_worker(echo_node.worker_id)
    echo_node.draining = True
    assert get(f"{base_url}/health/live")[0] == 200
    status, body = get(f"{base_url}/health/ready")
    assert status == 503 and body["draining"] is True


def test_a_node_marked_offline_is_not_ready(base_url: str, echo_node: Any, online_worker: Any) -> None:
    online_worker(echo_node.worker_id)
    Worker.objects.filter(pk=echo_node.worker_id).update(status=WorkerStatus.OFFLINE)
    assert get(f"{base_url}/health/ready")[0] == 503


def test_unknown_paths_are_404(base_url: str) -> None:
    assert get(f"{base_url}/nope")[0] == 404
