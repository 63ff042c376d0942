"""/metrics: Prometheus text, state read from the database at scrape time, and counters
written by several processes merged in multiprocess mode."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents.tools import metrics as tool_metrics
from sessions import metrics as sessions_metrics
from sessions.models import AgentSession, SessionStatus
from runtime.events import TurnMetrics
from workers import metrics as workers_metrics
from workers.dispatch import job_dispatch
from workers.models import Worker

pytestmark = pytest.mark.django_db


def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_are_anonymous_and_show_jobs_queue_workers_and_sessions(client: Client, active_agent: Any) -> None:
    jobs = [job_dispatch(agent_id="support", room=f"r{i}") for i in range(3)]
    from workers.dispatch import job_cancel_request

    job_cancel_request(job_id=jobs[0].job_id)
    Worker.objects.create(
        worker_id="celery@a", hostname="a", queue="celery@a.dq2", capacity=8, load=0.25, active_jobs=2, last_heartbeat_at=timezone.now()
    )
    AgentSession.objects.create(job=jobs[1], agent=active_agent, agent_version=1, room_id="r1", status=SessionStatus.ACTIVE)

    m = scrape(client)
    assert m[("controlplane_jobs", (("status", "pending"),))] == 2
    assert m[("controlplane_jobs", (("status", "cancelled"),))] == 1
    assert m[("controlplane_jobs", (("status", "running"),))] == 0
    assert m[("controlplane_job_queue_depth", ())] == 2
    assert m[("controlplane_job_queue_limit", ())] == django_settings.JOB_QUEUE_LIMIT
    assert m[("controlplane_workers", (("status", "online"),))] == 1
    assert m[("controlplane_worker_load", (("worker", "celery@a"),))] == 0.25
    assert m[("controlplane_worker_active_jobs", (("worker", "celery@a"),))] == 2
    assert m[("controlplane_worker_capacity", (("worker", "celery@a"),))] == 8
    assert m[("controlplane_active_sessions", ())] == 1
    assert m[("controlplane_fleet_capacity", ())] == 8
    assert m[("controlplane_desired_capacity", ())] >= 1
    assert m[("controlplane_state_scrape_ok", ())] == 1


def test_event_metrics_are_exposed(client: Client) -> None:
    before = scrape(client)
    workers_metrics.observe_dispatch_latency(0.012)
    sessions_metrics.observe_turn_latency({"stt": 0.2, "llm_ttft": 0.3, "tts_ttfb": None, "end_to_end": 0.9})
    tool_metrics.record("lookup_order", execution="inline", error_kind=None, duration_ms=4.0)
    after = scrape(client)

    def grew(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after[(name, labels)] - before.get((name, labels), 0.0)

    assert grew("controlplane_dispatch_latency_seconds_count") == 1
    assert grew("controlplane_turn_latency_seconds_count", (("stage", "llm_ttft"),)) == 1
    assert ("controlplane_turn_latency_seconds_count", (("stage", "tts_ttfb"),)) not in after or grew(
        "controlplane_turn_latency_seconds_count", (("stage", "tts_ttfb"),)
    ) == 0
    assert grew("controlplane_tool_calls_total", (("outcome", "ok"), ("tool", "lookup_order"))) == 1


def test_turn_metrics_of_a_metrics_collected_event_feed_the_turn_histogram(client: Client) -> None:
    turn = TurnMetrics(turn_id="t1", end_of_utterance_delay_ms=300, stt_duration_ms=120, llm_ttft_ms=250, end_to_end_ms=800)
    before = scrape(client)
    sessions_metrics.observe_turn_metrics(turn.model_dump())
    after = scrape(client)

    def grew(stage: str, suffix: str) -> float:
        key = (f"controlplane_turn_latency_seconds_{suffix}", (("stage", stage),))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("end_to_end", "count") == 1 and abs(grew("end_to_end", "sum") - 0.8) < 1e-9
    assert grew("stt", "count") == 1 and grew("end_of_utterance", "count") == 1
    assert grew("tts_ttfb", "count") == 0  # the stage did not run


WRITER = """
import django
django.setup()
from agents.tools import metrics as tool_metrics
from sessions import metrics as sessions_metrics
from workers import metrics as workers_metrics
workers_metrics.observe_dispatch_latency(0.02)
sessions_metrics.observe_turn_latency({"end_to_end": 0.5})
tool_metrics.record("lookup_order", execution="celery", error_kind="timeout", duration_ms=30000)
"""


def test_multiprocess_mode_adds_up_what_every_process_wrote(client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "controlplane.settings"}
    for _ in range(2):  # two worker processes, each with its own counters
        subprocess.run([sys.executable, "-c", WRITER], env=env, check=True, cwd=django_settings.BASE_DIR, timeout=120)
    assert len(list(tmp_path.glob("*.db"))) >= 2

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    m = scrape(client)
    assert m[("controlplane_dispatch_latency_seconds_count", ())] == 2
    assert m[("controlplane_turn_latency_seconds_count", (("stage", "end_to_end"),))] == 2
    assert m[("controlplane_tool_calls_total", (("outcome", "timeout"), ("tool", "lookup_order")))] == 2
    assert m[("controlplane_tool_timeouts_total", (("tool", "lookup_order"),))] == 2
    # the database-backed state is still there, once
    assert m[("controlplane_job_queue_depth", ())] == 0
