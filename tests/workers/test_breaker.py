from __future__ import annotations

from datetime import timedelta
from typing import Any

import time_machine
from django.utils import timezone

from workers.breaker import breaker_record_failure, breaker_record_success
from workers.dispatch import job_dispatch, job_route
from workers.models import CircuitState, Job, JobStatus, Worker

# audio_processing metadata that dispatch accepts (the handler decodes it only when it runs)
AUDIO = {"pcm16_base64": "AAAA", "sample_rate": 16000}


def state(worker: Worker) -> str:
    worker.refresh_from_db()
    return worker.circuit_state


def test_the_circuit_opens_after_threshold_consecutive_failures(online_worker: Any, settings: Any) -> None:
    settings.CIRCUIT_BREAKER_THRESHOLD = 3
    worker = online_worker("w1@unit")
    assert breaker_record_failure(worker_id=worker.pk) == CircuitState.CLOSED
    assert breaker_record_failure(worker_id=worker.pk) == CircuitState.CLOSED
    assert breaker_record_failure(worker_id=worker.pk) == CircuitState.OPEN
    assert worker.__class__.objects.get(pk=worker.pk).circuit_opened_at is not None


def test_a_success_resets_the_failure_count(online_worker: Any, settings: Any) -> None:
    settings.CIRCUIT_BREAKER_THRESHOLD = 2
    worker = online_worker("w1@unit")
    breaker_record_failure(worker_id=worker.pk)
    breaker_record_success(worker_id=worker.pk)
    assert breaker_record_failure(worker_id=worker.pk) == CircuitState.CLOSED


def test_the_dispatcher_skips_an_open_worker_then_half_opens_it_after_the_cooldown(
    active_agent: Any, online_worker: Any, settings: Any
) -> None:
    settings.CIRCUIT_BREAKER_THRESHOLD = 1
    settings.CIRCUIT_BREAKER_COOLDOWN_SECONDS = 30
    settings.WORKER_OFFLINE_AFTER_SECONDS = 3600
    settings.DISPATCH_STRATEGY = "least_connections"
    flaky = online_worker("a-flaky@unit")
    steady = online_worker("b-steady@unit")
    breaker_record_failure(worker_id=flaky.pk)
    assert state(flaky) == CircuitState.OPEN

    first = job_dispatch(agent_id=active_agent.agent_id, room="r1", transport="local")
    assert first.assigned_worker_id == steady.pk  # open: skipped although it has fewer jobs

    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        trial = job_dispatch(agent_id=active_agent.agent_id, room="r2", transport="local")
        assert trial.assigned_worker_id == flaky.pk  # one trial job after the cool-down
        assert state(flaky) == CircuitState.HALF_OPEN
        third = job_dispatch(agent_id=active_agent.agent_id, room="r3", transport="local")
        assert third.assigned_worker_id == steady.pk  # no second job while the trial runs


def test_a_successful_trial_closes_the_circuit_and_a_failed_one_reopens_it(online_worker: Any, settings: Any) -> None:
    settings.CIRCUIT_BREAKER_THRESHOLD = 1
    worker = online_worker("w1@unit", circuit_state=CircuitState.HALF_OPEN, circuit_opened_at=timezone.now())
    breaker_record_success(worker_id=worker.pk)
    assert state(worker) == CircuitState.CLOSED and worker.consecutive_failures == 0
    Worker.objects.filter(pk=worker.pk).update(circuit_state=CircuitState.HALF_OPEN)
    assert breaker_record_failure(worker_id=worker.pk) == CircuitState.OPEN


def test_the_circuit_recovers_through_real_job_outcomes(active_agent: Any, online_worker: Any, settings: Any) -> None:
    """Failures recorded by the runner open it; after the cool-down a completed trial closes it."""
    from workers.claims import job_claim
    from workers.session_runner import run_claimed_job

    settings.CIRCUIT_BREAKER_THRESHOLD = 2
    settings.CIRCUIT_BREAKER_COOLDOWN_SECONDS = 10
    settings.WORKER_OFFLINE_AFTER_SECONDS = 3600
    worker = online_worker("w1@unit")
    outcomes = iter([RuntimeError("worker lost its GPU"), RuntimeError("worker lost its GPU"), None])

    def handler(job: Any, worker_id: str) -> None:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome  # an exception is the worker's fault

    from workers import session_runner

    original = dict(session_runner.JOB_HANDLERS)
    session_runner.JOB_HANDLERS["audio_processing"] = handler
    try:
        for i in range(2):
            job = job_dispatch(agent_id=None, room=f"r{i}", transport="local", job_type="audio_processing", metadata=AUDIO)
            assert job.assigned_worker_id == worker.pk
            assert run_claimed_job(job=job_claim(job_id=job.pk, worker_id=worker.pk), worker_id=worker.pk) == "failed"
        assert state(worker) == CircuitState.OPEN
        job = job_dispatch(agent_id=None, room="r-wait", transport="local", job_type="audio_processing", metadata=AUDIO)
        assert job.status == JobStatus.PENDING and job_route(job_id=job.pk) is None
        with time_machine.travel(timezone.now() + timedelta(seconds=11)):
            assert job_route(job_id=job.pk) == worker.pk
            assert run_claimed_job(job=job_claim(job_id=job.pk, worker_id=worker.pk), worker_id=worker.pk) == "completed"
        assert state(worker) == CircuitState.CLOSED
        assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED
    finally:
        session_runner.JOB_HANDLERS.clear()
        session_runner.JOB_HANDLERS.update(original)


def test_a_job_that_fails_on_its_own_input_does_not_count_against_the_worker(online_worker: Any, settings: Any) -> None:
    from workers.claims import job_claim
    from workers.session_runner import run_claimed_job

    settings.CIRCUIT_BREAKER_THRESHOLD = 1
    worker = online_worker("w1@unit")
    job = job_dispatch(agent_id=None, room="r", transport="local", job_type="audio_processing",
                       metadata={**AUDIO, "pcm16_base64": "not base64!"})  # audio it cannot decode
    assert run_claimed_job(job=job_claim(job_id=job.pk, worker_id=worker.pk), worker_id=worker.pk) == "failed"
    assert state(worker) == CircuitState.CLOSED and worker.consecutive_failures == 0
