"""The dashboard and API actions on a realtime session, end to end: a dispatched job for an
`openai_realtime` agent runs on this process acting as a worker (the default entry point,
`sessions.launch` → RealtimeSession, the Django event sink), and operators act on it through
`sessions.control.send_session_command` — via the REST API, the dashboard action view, and
directly — exactly as on a cascaded session."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from agents import services as agent_services
from sessions.control import send_session_command
from sessions.models import AgentSession, SessionStatus
from runtime.events import parse_event
from tests.doubles.fixtures import allow_double_egress
from tests.doubles.openai_realtime_server import RealtimeDouble, RealtimeReply
from tests.helpers import wait_for
from tests.workers.helpers import InThread
from workers.dispatch import job_dispatch
from workers.models import Job, JobStatus
from workers.session_runner import run_job
from workers.worker_types import required_worker_type

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def realtime_agent(db: Any, realtime_api: RealtimeDouble, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Any:
    allow_double_egress(settings, "TEST_OPENAI_KEY")
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test-realtime")
    agent = agent_services.agent_create(
        agent_id="concierge", instructions="You are the hotel concierge.", actor="test",
        llm_config={"provider": "openai_realtime", "model": "gpt-realtime", "voice": "marin",
                    "base_url": realtime_api.base_url, "api_key_env": "TEST_OPENAI_KEY", "timeout_s": 5},
        vad_config={"provider": "webrtcvad"})
    return agent_services.agent_activate(agent=agent)


@pytest.fixture
def multimodal_node(as_node: Callable[..., Any]) -> Any:
    """This test process acting as worker `rt@test`: multimodal, the default entry point."""
    return as_node("rt@test", entry_point="sessions.entrypoints:agent_session", worker_type="multimodal_agent", online=True)


def types_of(session: AgentSession) -> list[str]:
    return list(session.events.order_by("seq").values_list("type", flat=True))


def count(session: AgentSession, type_: str, **data: Any) -> int:
    rows = session.events.filter(type=type_)
    return sum(1 for r in rows if all(r.data.get(k) == v for k, v in data.items()))


def test_operator_actions_work_on_a_realtime_session_as_on_a_cascaded_one(
        realtime_agent: Any, multimodal_node: Any, realtime_api: RealtimeDouble, operator: Any,
        api_key_factory: Any) -> None:
    assert required_worker_type(realtime_agent.config_snapshot()) == "multimodal_agent"
    realtime_api.responses.push(RealtimeReply.say("Good evening, how can I help?", audio_ms=400),
                                RealtimeReply.say("Breakfast is served from seven.", audio_ms=400),
                                RealtimeReply.say("Let me tell you all about the hotel " * 10, audio_ms=8000,
                                                  speed=1.0))
    job = job_dispatch(agent_id=realtime_agent.agent_id, room="lobby", transport="local")
    job = Job.objects.get(pk=job.pk)
    assert (job.status, job.assigned_worker_id) == (JobStatus.ASSIGNED, "rt@test")
    task = InThread(lambda: run_job(job_id=job.pk, worker_id="rt@test"))
    session = wait_for(lambda: AgentSession.objects.filter(job=job, status=SessionStatus.ACTIVE).first(),
                       what="a live realtime session")

    # user text through the REST API
    _, raw = api_key_factory("admin", name="ops-key")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    r = api.post(f"/api/v1/sessions/{session.pk}/messages", {"text": "Hello there"}, format="json")
    assert r.status_code == 202, r.content
    wait_for(lambda: count(session, "response_generated", text="Good evening, how can I help?"), what="the answer")

    # say from the dashboard's action view
    web = Client()
    web.force_login(operator)
    r = web.post(reverse("dashboard:session-action", args=[session.pk, "say"]), {"text": "Breakfast is served from seven."})
    assert r.status_code == 202, r.content
    wait_for(lambda: count(session, "response_generated", text="Breakfast is served from seven."), what="the say")

    # interrupt a long answer, straight through the control function
    send_session_command(session.pk, "message", actor="ops", text="Tell me about the hotel")
    wait_for(lambda: count(session, "agent_state_changed", new_state="speaking") >= 3, what="the long answer")
    send_session_command(session.pk, "interrupt", actor="ops")
    wait_for(lambda: count(session, "interrupted", reason="operator"), what="the interruption")
    wait_for(lambda: realtime_api.truncations, what="the truncate")

    # end through the REST API
    r = api.post(f"/api/v1/sessions/{session.pk}/end", {}, format="json")
    assert r.status_code == 202, r.content
    assert task.join() == "completed"
    session.refresh_from_db()
    assert session.status == SessionStatus.DISCONNECTED and session.end_reason.startswith("ended by")
    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED

    types = types_of(session)
    actions = [e.data["action"] for e in session.events.filter(type="operator_action").order_by("seq")]
    assert actions == ["message", "say", "message", "interrupt", "end"]  # the end too, with who did it
    assert session.events.filter(type="operator_action", data__action="end").get().data["by"] == "apikey:ops-key"
    for t in ("session_started", "text_received", "turn_started", "turn_ended", "speech_created",
              "response_generated", "interrupted", "response_cancelled", "metrics_collected", "realtime_event",
              "session_stopped"):
        assert t in types, f"no {t} in {types}"
    assert count(session, "speech_created", source="say") == 1
    assert types[-2:] == ["session_stopped", "call_ended"]  # then the end-of-call report
    # every stored row is a valid typed event, and seq is gap-free
    rows = list(session.events.order_by("seq"))
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        parse_event(row.type, row.at, row.data)
    # the model was configured for this agent
    update = realtime_api.received[0]["session"]
    assert update["instructions"] == "You are the hotel concierge." and update["audio"]["output"]["voice"] == "marin"
