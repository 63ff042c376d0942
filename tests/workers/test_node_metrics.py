"""A worker node's health server also serves /metrics: its own series and node gauges."""
from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sessions import metrics
from workers.health_server import start_health_server, stop_health_server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def base_url(echo_node: Any) -> Iterator[str]:
    server = start_health_server(0, host="127.0.0.1")
    yield f"http://127.0.0.1:{server.server_address[1]}"
    stop_health_server()


def scrape(url: str) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        assert response.status == 200
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    return content_type, samples


def test_the_node_serves_its_own_series_and_gauges(base_url: str, echo_node: Any) -> None:
    _, before = scrape(base_url)
    key = ("controlplane_sessions_ended_total", (("outcome", "completed"),))
    metrics.SESSIONS_ENDED.labels("completed").inc(3)
    content_type, after = scrape(base_url)
    assert content_type.startswith("text/plain; version=")
    assert after[key] - before.get(key, 0.0) == 3
    worker = (("worker", echo_node.worker_id),)
    assert after[("controlplane_node_active_sessions", worker)] == 0
    assert after[("controlplane_node_capacity", worker)] == echo_node.options.max_concurrent_jobs
    assert after[("controlplane_node_draining", worker)] == 0
    # the fleet's state is the web's to report, once
    assert not any(name == "controlplane_job_queue_depth" for name, _ in after)
