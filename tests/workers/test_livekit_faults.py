"""Faults of LiveKit calls as a worker's operator sees them, with a real worker subprocess,
PostgreSQL, Redis and the LiveKit double in its namespace: what the worker's log says about
a provider failure, and a join token the LiveKit server refuses (no Twirp call before it,
LIVEKIT_CREATE_ROOMS off) — the job's fault, not the worker's."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from sessions.models import AgentSession, SessionStatus
from tests.doubles.livekit_netns import LiveKitDoubleProcess
from tests.doubles.openai_server import OpenAIDouble, Reply
from tests.helpers import wait_for
from tests.workers.fleet import Fleet
from tests.workers.livekit_calls import (  # noqa: F401
    agent_in_room,
    dispatch,
    events,
    lk_settings,
    livekit_env,
    session_of,
    spoken_wav,
    start_worker,
    voice_agent,
    wait_event,
)
from workers.models import Job, JobStatus, Worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def _job_over(job_id: str, timeout: float = 40.0) -> Job:
    return wait_for(lambda: (j := Job.objects.get(pk=job_id)).is_finished and j, timeout=timeout, what="the job to end")


def test_an_stt_failure_is_logged_by_the_worker_with_the_job_and_session(
    lk_settings: LiveKitDoubleProcess, voice_agent: Any, fleet: Fleet, api_client: Any,  # noqa: F811
    openai_double: OpenAIDouble, tmp_path: Path,  # noqa: F811
) -> None:
    lk = lk_settings
    # the first try and its two retries (the STT config's default max_retries) all fail
    openai_double.transcripts.push(*[Reply.error(500, "transcription backend down")] * 3)
    worker = start_worker(fleet, lk)
    lk.client.add_caller("stt-1", "caller")
    job_id = dispatch(api_client, room="stt-1")
    session = session_of(job_id)
    agent_in_room(lk, "stt-1", job_id)
    wait_for(lambda: AgentSession.objects.get(pk=session.pk).status == SessionStatus.ACTIVE, timeout=20,
             what="the session active")
    lk.client.speak("stt-1", "caller", spoken_wav(tmp_path, "What is the weather in Paris?"))
    error = wait_event(session.pk, "error", where=lambda e: e["source"] == "stt")

    def logged() -> list[str]:
        return [line for line in worker.log().splitlines() if " stt error" in line]

    lines = wait_for(logged, timeout=10, what="the STT failure in the worker's log")
    assert len(lines) == 1, lines
    # one line an operator can grep by job or session, with the level and what failed
    assert re.search(rf" WARNING sessions\.job: \[job={job_id} session={session.pk}\] stt error \(status\): ", lines[0])
    assert error["message"] in lines[0] and "sk-test-double" not in worker.log()
    lk.client.leave("stt-1", "caller")
    assert _job_over(job_id).status == JobStatus.COMPLETED  # a provider failure is not the call's end


def test_a_join_token_the_server_refuses_fails_the_job_closes_the_session_and_spares_the_breaker(
    lk_settings: LiveKitDoubleProcess, voice_agent: Any, fleet: Fleet, api_client: Any,  # noqa: F811
) -> None:
    lk = lk_settings
    wrong = "a-wrong-secret-for-this-livekit-server-111"
    # no room creation: the first the server hears of the wrong secret is the agent's join
    (worker,) = fleet.start("lk", **{**livekit_env(lk, secret=wrong), "LIVEKIT_CREATE_ROOMS": "false"})
    jobs = [dispatch(api_client, room=f"join-{i}") for i in range(3)]  # as many as the breaker's threshold
    for job_id in jobs:
        job = _job_over(job_id, timeout=30)
        assert job.status == JobStatus.FAILED
        assert job.failure_reason.startswith("LiveKit authentication failed joining the room: ")
        assert "401" in job.failure_reason and "LIVEKIT_API_SECRET" in job.failure_reason
        session = AgentSession.objects.get(job_id=job_id)
        assert session.status == SessionStatus.ERROR and session.error == job.failure_reason
    assert lk.client.state()["twirp_calls"] == []
    row = Worker.objects.get(pk=worker.name)
    assert row.circuit_state == "closed" and row.consecutive_failures == 0
    assert wrong not in worker.log()


def test_a_dropped_signal_connection_is_reconnected_and_the_call_goes_on(
    lk_settings: LiveKitDoubleProcess, voice_agent: Any, fleet: Fleet, api_client: Any,  # noqa: F811
    openai_double: OpenAIDouble, tmp_path: Path,  # noqa: F811
) -> None:
    lk = lk_settings
    openai_double.default_transcript = "what is the weather in paris"
    openai_double.default_chat_text = "It is sunny in Paris."
    start_worker(fleet, lk)
    lk.client.add_caller("drop-1", "caller")
    job_id = dispatch(api_client, room="drop-1")
    session = session_of(job_id)
    agent_in_room(lk, "drop-1", job_id)
    wait_for(lambda: AgentSession.objects.get(pk=session.pk).status == SessionStatus.ACTIVE, timeout=20,
             what="the session active")
    lk.client.drop_signal("drop-1", f"agent-{job_id}")  # the WebSocket closes; the SDK resumes or restarts
    wait_event(session.pk, "reconnecting", timeout=15)
    back = wait_event(session.pk, "reconnected", timeout=30)
    assert back["transport"] == "livekit" and back["downtime_ms"] > 0
    wait_for(lambda: AgentSession.objects.get(pk=session.pk).status == SessionStatus.ACTIVE, timeout=20,
             what="the session active again")
    # the caller is still the agent's: its question is heard and answered after the reconnect
    asked_at = time.time()
    lk.client.speak("drop-1", "caller", spoken_wav(tmp_path, "What is the weather in Paris?"))

    def heard_after_reconnect() -> bool:  # on the agent's track as published again after the restart
        tracks = lk.client.caller("drop-1", "caller")["tracks"].values()
        return any(t > asked_at and level > 1000 for track in tracks for t, level in zip(track["times"], track["rms"]))

    wait_for(heard_after_reconnect, timeout=40, interval=0.2, what="the caller to hear the reply after the reconnect")
    assert any(e["text"] == "what is the weather in paris" for e in events(session.pk, "stt_result"))
    lk.client.leave("drop-1", "caller")
    job = _job_over(job_id)
    assert job.status == JobStatus.COMPLETED, job.failure_reason
    assert AgentSession.objects.get(pk=session.pk).end_reason == "participant_left"
