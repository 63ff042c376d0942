"""`manage.py loadtest`: simulated callers through the real API, a daphne web process and a
real `celery worker` hosting the demo agent (local providers: pocketsphinx, scripted LLM,
espeak-ng), plus the `loadtest` gate on dispatch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from controlplane.models import ApiKey
from tests.dashboard.live_server import DaphneServer, require_services
from tests.workers.fleet import ROOT, WorkerProcess
from tests.workers.fleet import test_database_url as worker_database_url  # not a test: renamed so pytest leaves it
from workers.models import Job

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


def test_loadtest_drives_calls_on_a_real_worker_and_reports_its_figures(tmp_path: Path) -> None:
    require_services()
    call_command("load_demo", providers="local")
    worker = WorkerProcess("loadtest", log_dir=tmp_path)
    server = DaphneServer(tmp_path)
    try:
        worker.wait_online()
        server.start()
        env = {**os.environ, "DATABASE_URL": worker_database_url(), "PYTHONPATH": str(ROOT)}
        env.pop("PYTEST_CURRENT_TEST", None)
        done = subprocess.run([sys.executable, "manage.py", "loadtest", "demo", "--calls", "2", "--duration", "14",
                               "--ramp", "2", "--url", server.url], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=200)
    finally:
        server.stop()
        worker.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["calls_started"] == 2 and report["calls_failed"] == 0, report
    # every caller asked the demo question at least once and heard the agent answer
    assert report["reply_latency_ms"]["n"] >= 2 and report["reply_latency_ms"]["p50"] is not None, report
    assert report["agent_frame_lag_ms"]["n"] > 0
    assert report["events_stored"] > 0 and report["events_lost"] == 0 and report["events_duplicated"] == 0, report
    assert any(line.startswith("reply latency (end of caller speech → first agent audio)") for line in lines)
    assert "calls started" in done.stderr  # the progress line
    # the calls went through the API as load-test jobs, and the temporary key is revoked
    jobs = list(Job.objects.all())
    assert len(jobs) == 2 and all(job.metadata.get("loadtest") is True for job in jobs)
    keys = list(ApiKey.objects.filter(name__startswith="loadtest-"))
    assert len(keys) == 1 and keys[0].revoked_at is not None and "loadtest" in keys[0].scopes


def test_a_loadtest_job_needs_the_loadtest_scope(active_agent: Any, api_key_factory: Any, settings: Any) -> None:
    settings.LOADTEST_ALLOWED = False
    body = {"agent": active_agent.agent_id, "room": "lt", "transport": "local", "metadata": {"loadtest": True}}
    plain = APIClient()
    plain.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_factory('jobs:write')[1]}")
    refused = plain.post("/api/v1/jobs/", body, format="json")
    assert refused.status_code == 403 and "loadtest" in refused.json()["detail"]
    assert not Job.objects.exists()
    allowed = APIClient()
    allowed.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_factory('jobs:write', 'loadtest', name='lt')[1]}")
    assert allowed.post("/api/v1/jobs/", body, format="json").status_code == 201
    settings.LOADTEST_ALLOWED = True  # the embedded mode's default: any jobs:write key may
    assert plain.post("/api/v1/jobs/", {**body, "room": "lt2"}, format="json").status_code == 201


def test_a_loadtest_job_must_say_true(active_agent: Any, api_key_factory: Any, settings: Any) -> None:
    settings.LOADTEST_ALLOWED = True
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_factory('jobs:write')[1]}")
    answer = client.post("/api/v1/jobs/", {"agent": active_agent.agent_id, "room": "x", "transport": "local",
                                           "metadata": {"loadtest": "yes"}}, format="json")
    assert answer.status_code == 400 and answer.json()["field"] == "metadata"


def test_an_unreadable_wav_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    with pytest.raises(CommandError, match="--wav"):
        call_command("loadtest", "demo", "--calls", "1", "--wav", str(missing))
