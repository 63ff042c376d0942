"""A live call through a real `celery worker` process (voice runtime on the loopback OpenAI
double, Redis channel layer, PostgreSQL), watched and steered only through the REST API:
its record shows agent state, participants, audio state and metrics moving as the call goes
on; pause stops the agent answering and resume brings it back."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from agents.models import Agent
from tests.doubles.fixtures import double_egress_env
from tests.doubles.openai_server import OpenAIDouble, Reply
from tests.helpers import wait_for
from tests.workers.fleet import Fleet

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]
KEY_ENV = "LIVE_STATE_TEST_OPENAI_KEY"


@pytest.fixture
def receptionist(agent_on_double: Callable[..., Agent]) -> Agent:
    return agent_on_double("receptionist", key_env=KEY_ENV, instructions="You are a brief receptionist.")


@pytest.fixture
def worker_env() -> dict[str, str]:
    return {KEY_ENV: "sk-test-double", **double_egress_env(KEY_ENV)}


@pytest.fixture
def api(api_key_factory: Callable[..., Any]) -> APIClient:
    _, raw = api_key_factory("read", "jobs:write", "sessions:control")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def poll(api: APIClient, url: str, until: Callable[[dict[str, Any]], bool], what: str, timeout: float = 20) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    def check() -> dict[str, Any] | None:
        body = api.get(url).json()
        seen.append(body)
        return body if until(body) else None

    try:
        return wait_for(check, timeout=timeout, interval=0.1, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last record: {seen[-1] if seen else None}") from None


def command(api: APIClient, session_id: str, name: str, text: str | None = None) -> None:
    response = api.post(f"/api/v1/sessions/{session_id}/{name}", {"text": text} if text else {}, format="json")
    assert response.status_code == 202, (name, response.status_code, response.content)


def test_the_api_record_follows_the_call_and_pause_stops_the_agent_answering(
        receptionist: Agent, fleet_worker: Fleet, openai_double: OpenAIDouble, api: APIClient) -> None:  # noqa: F811
    openai_double.chat.push(Reply.message("We open at nine."), Reply.message("Yes, on Sundays too."))
    job = api.post("/api/v1/jobs/", {"agent": "receptionist", "room": "front-desk", "transport": "local",
                                     "participant_identity": "caller-7"}, format="json")
    assert job.status_code == 201, job.content
    job_id = job.json()["job_id"]
    listed = poll(api, f"/api/v1/sessions/?job={job_id}", lambda b: b["count"] == 1 and b["results"][0]["status"] == "active",
                  "the session to be active", timeout=40)
    session_id = listed["results"][0]["session_id"]
    url = f"/api/v1/sessions/{session_id}/"

    # 1. at the start: listening, the caller in, the audio stream up, nothing counted yet
    start = poll(api, url, lambda b: b["agent_state"] == "listening" and b["participants"]
                 and b["audio_state"].get("stream_active") is True, "the live state of the new call")
    [caller] = start["participants"]
    assert (caller["identity"], caller["connection_state"], caller["left_at"]) == ("caller-7", "connected", None)
    assert start["audio_state"]["is_muted"] is False and start["audio_state"]["vad_enabled"] is True
    assert start["audio_state"]["format"]["encoding"] == "pcm16"
    assert start["metrics"].get("turns", 0) == 0 and start["audio_state"]["frames_sent"] == 0

    # 2. one exchange: the record moves on (turn counted, latency per stage, the agent's audio out)
    command(api, session_id, "messages", "When do you open?")
    after_turn = poll(api, url, lambda b: b["metrics"].get("responses") == 1 and b["agent_state"] == "listening",
                      "the first answer in the record")
    metrics = after_turn["metrics"]
    assert metrics["turns"] == 1 and metrics["latency_ms"]["end_to_end"]["count"] == 1
    assert metrics["latency_ms"]["llm_ttft"]["p50"] > 0 and metrics["tokens"]["total"] > 0
    assert metrics["characters"]["tts"] == len("We open at nine.")
    assert after_turn["conversation_state"]["last_user_text"] == "When do you open?"
    assert after_turn["conversation_state"]["last_agent_text"] == "We open at nine."
    assert after_turn["audio_state"]["frames_sent"] > 0 and after_turn["audio_state"]["latency_ms"] >= 0

    # 3. pause: the status goes paused, the audio is muted, a message gets no answer
    command(api, session_id, "pause")
    paused = poll(api, url, lambda b: b["status"] == "paused" and b["audio_state"].get("is_muted") is True, "the pause")
    assert paused["metrics"]["responses"] == 1
    command(api, session_id, "messages", "Are you open on Sundays?")
    events_url = f"/api/v1/sessions/{session_id}/events/"
    poll(api, f"{events_url}?type=text_received", lambda b: any(e["data"]["text"] == "Are you open on Sundays?"
                                                                   for e in b["results"]), "the paused message logged")
    time.sleep(1.5)  # time enough to answer, were it listening
    still = api.get(url).json()
    assert still["metrics"]["responses"] == 1 and still["metrics"]["turns"] == 1
    assert len(openai_double.requests_to("/chat/completions")) == 1
    assert api.get(f"{events_url}?type=response_generated").json()["count"] == 1

    # 4. resume: it answers again
    command(api, session_id, "resume")
    poll(api, url, lambda b: b["status"] == "active" and b["audio_state"].get("is_muted") is False, "the resume")
    command(api, session_id, "messages", "Are you open on Sundays?")
    resumed = poll(api, url, lambda b: b["metrics"].get("responses") == 2, "the answer after resume")
    assert resumed["conversation_state"]["last_agent_text"] == "Yes, on Sundays too."
    assert len(openai_double.requests_to("/chat/completions")) == 2

    # 5. the end: the caller left, the final figures stay, the agent's metrics count the call
    command(api, session_id, "end")
    final = poll(api, url, lambda b: b["status"] == "disconnected" and b["participants"][0]["left_at"], "the end",
                 timeout=30)
    assert final["participants"][0]["connection_state"] == "disconnected"
    assert final["audio_state"]["stream_active"] is False
    assert final["metrics"]["turns"] == 2 and final["metrics"]["latency_ms"]["end_to_end"]["count"] == 2
    history = [(e["data"]["old_state"], e["data"]["new_state"])
               for e in api.get(f"{events_url}?type=state_changed").json()["results"]]
    assert history == [("initializing", "connected"), ("connected", "active"), ("active", "paused"),
                       ("paused", "active"), ("active", "disconnected")]
    agent = poll(api, "/api/v1/agents/receptionist/", lambda b: b["metrics"].get("calls") == 1, "the agent's metrics")
    assert agent["metrics"]["error_rate"] == 0.0 and agent["metrics"]["latency_p50_ms"] > 0
    assert agent["metrics"]["latency_ms"]["end_to_end"]["count"] == 2
