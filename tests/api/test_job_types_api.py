"""POST /jobs/ dispatches every job type the CLI can: tool_execution and audio_processing."""
from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest
from rest_framework.test import APIClient

from agents.tools.sync import tool_sync
from workers.claims import job_claim
from workers.models import Job, JobStatus
from workers.session_runner import run_claimed_job

pytestmark = pytest.mark.django_db


def run(job_id: str, worker_id: str) -> Job:
    claimed = job_claim(job_id=job_id, worker_id=worker_id)
    assert claimed is not None
    run_claimed_job(job=claimed, worker_id=worker_id)
    return Job.objects.get(pk=job_id)


def test_a_tool_execution_job_is_dispatched_and_run(api_client: APIClient, worker: Any) -> None:
    tool_sync()
    response = api_client.post("/api/v1/jobs/", {"job_type": "tool_execution", "metadata": {
        "tool": "get_weather", "arguments": {"city": "Paris"}}}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["job_type"] == "tool_execution" and body["agent"] is None and body["room"] == "tool_execution"
    done = run(body["job_id"], worker.pk)
    assert done.status == JobStatus.COMPLETED and "Paris" in done.metadata["result"]["output"]
    assert api_client.get(f"/api/v1/jobs/{body['job_id']}/").json()["metadata"]["result"]["error_kind"] is None


def test_an_audio_processing_job_is_dispatched_and_run(api_client: APIClient, worker: Any) -> None:
    pcm = (8000 * np.sin(2 * np.pi * 180 * np.arange(16000) / 16000)).astype(np.int16).tobytes()
    response = api_client.post("/api/v1/jobs/", {"job_type": "audio_processing", "room": "batch-7", "metadata": {
        "pcm16_base64": base64.b64encode(pcm).decode(), "sample_rate": 16000}}, format="json")
    assert response.status_code == 201, response.content
    done = run(response.json()["job_id"], worker.pk)
    assert done.status == JobStatus.COMPLETED and done.metadata["result"]["duration_ms"] == 1000.0


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"job_type": "tool_execution", "metadata": {}}, "metadata", "metadata.tool"),
    ({"job_type": "tool_execution", "metadata": {"tool": "get_weather", "arguments": [1]}}, "metadata", "arguments"),
    ({"job_type": "audio_processing", "metadata": {"sample_rate": 16000}}, "metadata", "pcm16_base64"),
    ({"job_type": "audio_processing", "metadata": {"pcm16_base64": "AAAA", "sample_rate": 44100}}, "metadata", "sample_rate"),
    ({"job_type": "agent_session", "room": "r"}, "agent", "required"),
    ({"job_type": "teleport", "agent": "support", "room": "r"}, "job_type", "valid choice"),
])
def test_a_bad_job_of_any_type_gets_400_naming_the_field(api_client: APIClient, active_agent: Any, body: dict[str, Any],
                                                          field: str, words: str) -> None:
    response = api_client.post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 400, response.content
    assert words in " ".join(response.json()[field]) and not Job.objects.exists()
