"""`manage.py loadtest --transport livekit`: each simulated caller joins its job's room from
the load-test process as a `livekit.rtc` participant (libwebrtc, across the veth to the
LiveKit double in its namespace), against a real worker subprocess, a daphne web process,
PostgreSQL and Redis; the agent's LLM/STT/TTS are the OpenAI double."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sessions.models import AgentSession, SessionStatus
from tests.dashboard.live_server import DaphneServer, require_services
from tests.doubles.livekit_netns import LiveKitDoubleProcess
from tests.doubles.openai_server import OpenAIDouble
from tests.workers.fleet import ROOT, Fleet
from tests.workers.fleet import test_database_url as worker_database_url  # not a test: renamed so pytest leaves it
from tests.workers.livekit_calls import lk_settings, spoken_wav, start_worker, voice_agent  # noqa: F401
from workers.models import Job, JobStatus
from workers.simulated_caller_livekit import CALLER_IDENTITY

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]
REPLY = "It is sunny in Paris today."


def test_loadtest_over_livekit_joins_each_room_from_the_loadtest_process_and_reports_its_figures(
    lk_settings: LiveKitDoubleProcess, voice_agent: Any, fleet: Fleet, openai_double: OpenAIDouble,  # noqa: F811
    tmp_path: Path,
) -> None:
    require_services()
    lk = lk_settings
    openai_double.default_transcript = "what is the weather in paris"
    openai_double.default_chat_text = REPLY
    livekit = {"LIVEKIT_URL": lk.url, "LIVEKIT_API_KEY": lk.api_key, "LIVEKIT_API_SECRET": lk.api_secret}
    worker = start_worker(fleet, lk)
    server = DaphneServer(tmp_path, **livekit).start()
    wav = spoken_wav(tmp_path, "What is the weather in Paris?")
    env = {**os.environ, "DATABASE_URL": worker_database_url(), "PYTHONPATH": str(ROOT), **livekit}
    env.pop("PYTEST_CURRENT_TEST", None)
    try:
        done = subprocess.run([sys.executable, "manage.py", "loadtest", "concierge", "--transport", "livekit",
                               "--calls", "2", "--duration", "14", "--ramp", "1", "--wav", str(wav), "--url", server.url],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=200)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)  # the figures, for whoever runs it with -s
    lines = done.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["transport"] == "livekit"
    assert report["calls_started"] == 2 and report["calls_failed"] == 0, report
    # every call answered: each caller heard the agent's voice over WebRTC after its question
    assert report["calls_answered"] == 2 and report["missing_replies"] == 0, report
    assert report["reply_latency_ms"]["n"] >= 2 and report["reply_latency_ms"]["p99"] is not None, report
    assert report["agent_frame_lag_ms"]["n"] > 0
    assert report["events_stored"] > 0 and report["events_lost"] == 0 and report["events_duplicated"] == 0, report
    assert "calls started" in done.stderr  # the progress line
    assert lk.api_secret not in done.stdout + done.stderr

    # the callers were real clients of the LiveKit server (signal + WebRTC), one per job's room,
    # and the agent heard them: the STT double got their speech
    jobs = list(Job.objects.all())
    assert len(jobs) == 2 and all(j.transport == "livekit" and j.metadata.get("loadtest") is True for j in jobs)
    joins = lk.client.state()["joins"]
    assert sorted(j["room"] for j in joins if j["identity"] == CALLER_IDENTITY) == sorted(j.room_name for j in jobs)
    assert len(openai_double.requests_to("/audio/transcriptions")) >= 2
    for job in jobs:
        assert job.status in (JobStatus.COMPLETED, JobStatus.CANCELLED), (job.status, job.failure_reason)
        session = AgentSession.objects.get(job_id=job.pk)
        assert session.status == SessionStatus.DISCONNECTED
        # the room the job created was its own (the caller joined after the agent) and is deleted
        assert job.room.get("created_by_job") is True
    assert set(lk.client.state()["deleted_rooms"]) == {j.room_name for j in jobs}
    # normal calls (14 s each: several of the control channel's 5 s idle receives) log no warnings
    # in the worker: not "control channel receive failed", not the SDK's "unknown FFI handle" at the end
    noisy = [line for line in worker.log().splitlines() if " WARNING " in line or " ERROR " in line]
    assert noisy == [], "\n".join(noisy)
    assert "control channel" not in worker.log() and "FFI handle" not in worker.log()
