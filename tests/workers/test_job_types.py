"""Job types other than agent sessions, run by the worker's job handlers."""
from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest
from django.utils import timezone

from agents.tools.sync import tool_sync
from controlplane.errors import DomainError
from workers.claims import job_claim
from workers.dispatch import job_dispatch
from workers.models import Job, JobStatus, JobType, Transport
from workers.session_runner import run_claimed_job


def run(job: Job, worker_id: str) -> Job:
    claimed = job_claim(job_id=job.pk, worker_id=worker_id)
    assert claimed is not None
    run_claimed_job(job=claimed, worker_id=worker_id)
    return Job.objects.get(pk=job.pk)


def test_a_tool_execution_job_runs_the_tool_and_keeps_its_output(online_worker: Any) -> None:
    tool_sync()
    worker = online_worker("w1@unit")
    job = job_dispatch(agent_id=None, room="-", transport="local", job_type="tool_execution",
                       metadata={"tool": "get_weather", "arguments": {"city": "Paris"}})
    done = run(job, worker.pk)
    assert done.status == JobStatus.COMPLETED
    assert "Paris" in done.metadata["result"]["output"]


def test_a_tool_execution_job_with_bad_arguments_fails_with_the_reason(online_worker: Any) -> None:
    tool_sync()
    worker = online_worker("w1@unit")
    job = job_dispatch(agent_id=None, room="-", transport="local", job_type="tool_execution",
                       metadata={"tool": "get_weather", "arguments": {"town": "Paris"}})
    done = run(job, worker.pk)
    assert done.status == JobStatus.FAILED and "invalid_arguments" in done.failure_reason


def test_an_audio_processing_job_measures_speech(online_worker: Any, db: Any) -> None:
    worker = online_worker("w1@unit")
    rate = 16000
    t = np.arange(rate) / rate  # 1 s of a voiced-like signal, then 1 s of silence
    voiced = (8000 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.int16)
    pcm = np.concatenate([voiced, np.zeros(rate, dtype=np.int16)]).tobytes()
    job = job_dispatch(agent_id=None, room="-", transport="local", job_type="audio_processing",
                       metadata={"pcm16_base64": base64.b64encode(pcm).decode(), "sample_rate": rate})
    done = run(job, worker.pk)
    result = done.metadata["result"]
    assert done.status == JobStatus.COMPLETED
    assert result["duration_ms"] == 2000.0 and result["frames"] == 66 and result["rms"] > 0


def test_an_audio_processing_job_without_audio_is_refused_naming_the_field(db: Any) -> None:
    with pytest.raises(DomainError) as exc:
        job_dispatch(agent_id=None, room="-", transport="local", job_type="audio_processing", metadata={})
    assert exc.value.field == "metadata" and "pcm16_base64" in exc.value.message
    assert not Job.objects.exists()


def test_an_audio_processing_job_without_audio_fails_with_the_reason(online_worker: Any) -> None:
    worker = online_worker("w1@unit")
    # stored without audio (dispatch refuses such a job now; one queued before that still runs)
    job = Job.objects.create(job_type=JobType.AUDIO_PROCESSING, room_name="-", room={"name": "-"}, transport=Transport.LOCAL,
                             metadata={}, status=JobStatus.ASSIGNED, assigned_worker=worker, assigned_at=timezone.now())
    done = run(job, worker.pk)
    assert done.status == JobStatus.FAILED and "pcm16_base64" in done.failure_reason


def test_a_tool_execution_job_hands_its_claim_to_the_live_view_before_the_tool_runs(
        online_worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # a tool may run for minutes: the claim's event is not held back for the job's end
    from controlplane import broadcaster as broadcaster_module
    from workers.session_runner import run_job

    tool_sync()
    worker = online_worker("w1@unit")
    job = job_dispatch(agent_id=None, room="-", transport="local", job_type="tool_execution",
                       metadata={"tool": "get_weather", "arguments": {"city": "Paris"}})
    hand_overs: list[list[str]] = []
    real_hand_over = broadcaster_module.broadcaster._hand_over

    def record(items: Any) -> None:
        hand_overs.append([f"{message['kind']} {message['data']['status']}" for sends, _ in items
                           for _, message in sends if message["type"] == "fleet.event"])
        real_hand_over(items)

    monkeypatch.setattr(broadcaster_module.broadcaster, "_hand_over", record)

    assert run_job(job_id=job.pk, worker_id=worker.pk) == "completed"

    assert [h for h in hand_overs if any(e.startswith("job ") for e in h)] == [["job running"], ["job completed"]]
