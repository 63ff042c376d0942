"""A worker node's health server also serves /metrics: its own series and node gauges."""
from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sessions import metrics

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(url: str) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        assert response.status == 200
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    return content_type, samples


def test_the_node_serves_its_own_series_and_gauges(health_server_url: str, echo_node: Any) -> None:
    _, before = scrape(health_server_url)
    key = ("controlplane_sessions_ended_total", (("outcome", "completed"),))
    metrics.SESSIONS_ENDED.labels("completed").inc(3)
    content_type, after = scrape(health_server_url)
    assert content_type.startswith("text/plain; version=")
    assert after[key] - before.get(key, 0.0) == 3
    worker = (("worker", echo_node.worker_id),)
    assert after[("controlplane_node_active_sessions", worker)] == 0
    assert after[("controlplane_node_capacity", worker)] == echo_node.options.max_concurrent_jobs
    assert after[("controlplane_node_draining", worker)] == 0
    # the fleet's state is the web's to report, once
    assert not any(name == "controlplane_job_queue_depth" for name, _ in after)
