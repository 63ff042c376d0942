"""Job metadata `simulated_caller`: the load-test gate and its field checks at dispatch, and a
real `celery worker` playing the caller into a voice session on the OpenAI double, which ends
the call itself and stores its `caller_report`."""
from __future__ import annotations

import base64
import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rest_framework.test import APIClient

from sessions.models import AgentSession, SessionEvent
from tests.doubles.fixtures import double_egress_env
from tests.helpers import wait_for
from tests.workers.fleet import WorkerProcess
from workers.models import Job, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)

CALLER = {"text": "What's the weather in Paris?", "duration_s": 12}


def client_with(api_key_factory: Any, *scopes: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_factory('jobs:write', *scopes, name='-'.join(scopes) or 'plain')[1]}")
    return client


def dispatch(client: APIClient, agent: str, caller: Any, transport: str = "local", room: str = "caller") -> Any:
    return client.post("/api/v1/jobs/", {"agent": agent, "room": room, "transport": transport,
                                         "metadata": {"simulated_caller": caller}}, format="json")


def test_a_simulated_caller_needs_the_loadtest_scope(active_agent: Any, api_key_factory: Any, settings: Any) -> None:
    settings.LOADTEST_ALLOWED = False
    refused = dispatch(client_with(api_key_factory), active_agent.agent_id, CALLER)
    assert refused.status_code == 403 and "loadtest" in refused.json()["detail"]
    assert not Job.objects.exists()
    allowed = dispatch(client_with(api_key_factory, "loadtest"), active_agent.agent_id, CALLER)
    assert allowed.status_code == 201, allowed.json()
    assert Job.objects.get().metadata["simulated_caller"] == CALLER


@pytest.mark.parametrize(("caller", "field"), [
    ({"text": "hi", "duration_s": 0}, "metadata.simulated_caller.duration_s"),
    ({"text": "", "duration_s": 5}, "metadata.simulated_caller.text"),
    ({"duration_s": 5}, "metadata.simulated_caller"),
    ({"text": "hi", "loudness": 3}, "metadata.simulated_caller.loudness"),
    ({"wav_base64": "not base64!"}, "metadata.simulated_caller.wav_base64"),
    ({"wav_base64": base64.b64encode(b"RIFF....WAVE").decode()}, "metadata.simulated_caller.wav_base64"),
    ("speak", "metadata.simulated_caller"),
])
def test_a_bad_simulated_caller_field_is_a_400_naming_it(active_agent: Any, api_key_factory: Any, settings: Any,
                                                         caller: Any, field: str) -> None:
    settings.LOADTEST_ALLOWED = True
    answer = dispatch(client_with(api_key_factory), active_agent.agent_id, caller)
    assert answer.status_code == 400 and answer.json()["field"] == field, answer.json()
    assert not Job.objects.exists()


def test_a_simulated_caller_needs_the_local_transport(active_agent: Any, api_key_factory: Any, settings: Any) -> None:
    settings.LOADTEST_ALLOWED = True
    answer = dispatch(client_with(api_key_factory), active_agent.agent_id, CALLER, transport="livekit")
    assert answer.status_code == 400 and answer.json()["field"] == "transport"


def test_a_wav_caller_is_accepted(active_agent: Any, api_key_factory: Any, settings: Any) -> None:
    settings.LOADTEST_ALLOWED = True
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(1600, dtype="<i2").tobytes())
    answer = dispatch(client_with(api_key_factory), active_agent.agent_id, {"wav_base64": base64.b64encode(out.getvalue()).decode()})
    assert answer.status_code == 201, answer.json()


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_worker_plays_the_caller_and_stores_its_reply_latency(agent_on_double: Any, openai_double: Any,
                                                                api_key_factory: Any, tmp_path: Path) -> None:
    openai_double.default_transcript = "what is the weather in paris"
    openai_double.default_chat_text = "It is sunny in Paris today."
    openai_double.speech_ms_per_char = 20.0
    agent_on_double("caller-agent", key_env="CALLER_TEST_KEY", instructions="Answer briefly.")
    worker = WorkerProcess("caller", log_dir=tmp_path, CALLER_TEST_KEY="sk-test", **double_egress_env("CALLER_TEST_KEY"))
    try:
        worker.wait_online()
        answer = dispatch(client_with(api_key_factory, "loadtest"), "caller-agent", CALLER)
        assert answer.status_code == 201, answer.json()
        job_id = answer.json()["job_id"]
        # the caller hangs up at its duration: the job completes on its own
        job = wait_for(lambda: (j := Job.objects.get(pk=job_id)).status in (JobStatus.COMPLETED, JobStatus.FAILED) and j,
                       timeout=90, what="the call to end")
    finally:
        worker.stop()
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, worker.log()[-3000:])
    session = AgentSession.objects.get(job=job)
    reports = list(SessionEvent.objects.filter(session=session, type="caller_report"))
    assert len(reports) == 1, worker.log()[-3000:]
    report = reports[0].data
    assert report["utterances"] >= 1 and report["replies"] >= 1, report
    assert len(report["reply_ms"]) == report["replies"] and all(ms > 0 for ms in report["reply_ms"])
    assert sum(report["in_lag_counts"]) > 300 and sum(report["out_lag_counts"]) > 0
    # the caller's speech reached the agent's STT, and the agent's reply went back to it
    assert openai_double.requests_to("/audio/transcriptions") and openai_double.requests_to("/audio/speech")
    types = list(SessionEvent.objects.filter(session=session).order_by("seq").values_list("type", flat=True))
    assert types.index("caller_report") < types.index("session_stopped")
