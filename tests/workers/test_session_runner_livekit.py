"""A LiveKit job whose room cannot be prepared (`prepare_room` runs before the session is
hosted): its session is still closed, in `error` with the job's failure reason, and only a
failure that is the worker's own counts against the worker's circuit breaker."""
from __future__ import annotations

import socket
from typing import Any

import pytest

from sessions.models import AgentSession, SessionStatus
from workers.dispatch import job_dispatch
from workers.models import CircuitState, Job, JobStatus, Worker
from workers.session_runner import run_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def livekit_job(active_agent: Any, online_worker: Any, echo_node: Any, settings: Any) -> Job:
    # the web process that accepted the job had LiveKit configured
    settings.LIVEKIT_URL, settings.LIVEKIT_API_KEY = "http://127.0.0.1:7880", "APIkey"
    settings.LIVEKIT_API_SECRET = "a-livekit-secret-long-enough-for-hs256-000"
    online_worker(echo_node.worker_id)
    job = Job.objects.get(pk=job_dispatch(agent_id=active_agent.agent_id, room="lk-room", transport="livekit").pk)
    assert (job.status, job.assigned_worker_id) == (JobStatus.ASSIGNED, echo_node.worker_id)
    return job


def _closed_port() -> int:
    with socket.socket() as s:  # bound and closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_worker_without_livekit_settings_fails_the_job_closes_its_session_and_spares_the_breaker(
    livekit_job: Job, echo_node: Any, settings: Any,
) -> None:
    settings.LIVEKIT_URL = ""  # this worker was started without it
    assert run_job(job_id=livekit_job.pk, worker_id=echo_node.worker_id) == "failed"
    job = Job.objects.get(pk=livekit_job.pk)
    assert job.status == JobStatus.FAILED and job.failure_reason.startswith("LiveKit is not configured")
    session = AgentSession.objects.get(job_id=job.pk)
    assert (session.status, session.error) == (SessionStatus.ERROR, job.failure_reason)
    assert session.ended_at is not None
    worker = Worker.objects.get(pk=echo_node.worker_id)
    assert (worker.consecutive_failures, worker.circuit_state) == (0, CircuitState.CLOSED)


def test_a_livekit_server_unreachable_at_room_creation_closes_the_session_with_the_jobs_reason(
    livekit_job: Job, echo_node: Any, settings: Any,
) -> None:
    settings.LIVEKIT_URL = url = f"http://127.0.0.1:{_closed_port()}"
    assert run_job(job_id=livekit_job.pk, worker_id=echo_node.worker_id) == "failed"
    job = Job.objects.get(pk=livekit_job.pk)
    assert job.status == JobStatus.FAILED
    # the reason names the LiveKit server and the call that could not reach it
    assert job.failure_reason.startswith(f"LiveKitUnreachable: the LiveKit server at {url} could not be reached (")
    session = AgentSession.objects.get(job_id=job.pk)
    # not left `initializing`: closed in error with the very reason the job failed with
    assert (session.status, session.error) == (SessionStatus.ERROR, job.failure_reason)
    assert session.ended_at is not None
