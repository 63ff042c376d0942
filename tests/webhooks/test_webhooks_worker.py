"""Webhooks end to end: a real `celery worker` subprocess runs a voice session (OpenAI double on
loopback, a code tool) whose events reach a loopback receiver through Redis, signed; a
receiver that fails twice gets the event on the third try through the real broker."""
from __future__ import annotations

import json
import wave
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from agents.models import Agent
from sessions.control import send_session_command
from sessions.event_sink import session_events_append_and_broadcast
from sessions.models import AgentSession, Recording
from tests.doubles.fixtures import double_egress_env
from tests.doubles.openai_server import OpenAIDouble, Reply
from tests.helpers import wait_for
from tests.webhooks.receiver import WebhookReceiver
from tests.workers.fleet import Fleet
from webhooks.models import DeliveryStatus, WebhookDelivery
from webhooks.services import webhook_endpoint_create
from workers.dispatch import job_dispatch

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]
KEY_ENV = "WEBHOOK_TEST_OPENAI_KEY"


@pytest.fixture
def concierge(agent_on_double: Callable[..., Agent]) -> Agent:
    return agent_on_double("concierge", key_env=KEY_ENV, instructions="You are a concise hotel concierge.",
                           tools=["get_weather"], recording_config={"enabled": True})


@pytest.fixture
def worker_env(tmp_path: Path, loopback_allowed: None, empty_broker: None) -> dict[str, str]:
    """The worker takes the deliveries from the broker: it starts on an empty one."""
    return {**double_egress_env(KEY_ENV), KEY_ENV: "sk-test-double", "TOOLS_ALLOW_PRIVATE_ADDRESSES": "true",
            "WEBHOOK_RETRY_BASE_SECONDS": "0.3", "MEDIA_ROOT": str(tmp_path / "media"),
            "RECORDINGS_SPOOL_DIR": str(tmp_path / "spool"), "WEBHOOK_SUBSCRIPTIONS_TTL_SECONDS": "0.5"}


def test_a_receiver_gets_session_started_tool_events_and_the_end_of_call_report_signed(
        concierge: Agent, fleet_worker: Fleet, openai_double: OpenAIDouble, receiver_factory: Any,  # noqa: F811
        tmp_path: Path) -> None:
    receiver: WebhookReceiver = receiver_factory()
    _, secret = webhook_endpoint_create(url=receiver.url, event_types=[
        "session_started", "tool_called", "tool_completed", "call_ended"])
    openai_double.chat.push(Reply.tool("get_weather", {"city": "Paris"}), Reply.message("It is sunny in Paris today."))

    job = job_dispatch(agent_id="concierge", room="lobby", transport="local")
    session_id = wait_for(lambda: AgentSession.objects.filter(job_id=job.job_id, status="active")
                          .values_list("session_id", flat=True).first(), timeout=30, what="the session")
    receiver.wait_for(lambda: receiver.of_type("session_started"), what="session_started")
    send_session_command(session_id, "message", actor="test", text="What's the weather in Paris?")
    receiver.wait_for(lambda: receiver.of_type("tool_completed"), what="the tool events")
    wait_for(lambda: AgentSession.objects.get(pk=session_id).events.filter(
        type="conversation_item_added", data__content="It is sunny in Paris today.").exists(), timeout=20,
        what="the answer, as heard")
    send_session_command(session_id, "end", actor="test")
    receiver.wait_for(lambda: receiver.of_type("call_ended"), what="the end-of-call report")

    for event_type in ("session_started", "tool_called", "tool_completed", "call_ended"):
        [request] = receiver.of_type(event_type)
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["session_id"] == session_id and payload["agent_id"] == "concierge"
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(request.body.replace(b'"type"', b'"typ\\u0065"'), request.headers)
        stale = {**request.headers, "webhook-timestamp": str(int(request.headers["webhook-timestamp"]) - 1)}
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(request.body, stale)
    assert json.loads(receiver.of_type("tool_called")[0].body)["data"]["name"] == "get_weather"

    report = json.loads(receiver.of_type("call_ended")[0].body)["data"]
    assert report["status"] == "disconnected" and report["reason"]
    assert [(line["role"], line["text"]) for line in report["transcript"]] == [
        ("user", "What's the weather in Paris?"), ("assistant", "It is sunny in Paris today.")]
    assert report["duration_s"] > 0 and isinstance(report["metrics"], dict)
    assert report["recording_url"].endswith(f"/api/v1/sessions/{session_id}/recording")
    recording = Recording.objects.get(session_id=session_id)
    with wave.open(str(tmp_path / "media" / recording.file.name), "rb") as wav:
        assert wav.getframerate() == 16000
        assert wav.getnframes() / 16000 == pytest.approx(report["duration_s"], abs=1.0)
    # the receiver has the request before the worker has read its 200 and stored the outcome
    wait_for(lambda: not WebhookDelivery.objects.filter(session_id=session_id).exclude(
        status=DeliveryStatus.SUCCEEDED).exists(), timeout=10, what="every delivery marked succeeded")
    assert WebhookDelivery.objects.filter(session_id=session_id).count() == 4


def test_a_receiver_answering_500_twice_then_200_gets_it_on_the_third_try_through_the_broker(
        active_agent: Agent, fleet_worker: Fleet, receiver_factory: Any, django_capture_on_commit_callbacks: Any) -> None:
    receiver: WebhookReceiver = receiver_factory(500, 500, 200)
    _, secret = webhook_endpoint_create(url=receiver.url, event_types=["session_started"])
    session = AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id="r")

    # stored and enqueued here (to Redis); the worker subprocess delivers and retries
    session_events_append_and_broadcast(session_id=session.session_id,
                                        events=[("session_started", datetime.now(timezone.utc), {})])
    receiver.wait_for(lambda: len(receiver.requests) >= 3, what="three attempts")

    assert [r.answered for r in receiver.requests] == [500, 500, 200]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:])]
    assert gaps[1] > gaps[0] * 1.3, gaps  # exponential back-off: 0.3 s, then 0.6 s
    Webhook(secret).verify(receiver.requests[-1].body, receiver.requests[-1].headers)
    delivery = wait_for(lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).first(), timeout=10,
                        what="the delivery settled")
    assert (delivery.attempts, delivery.response_code) == (3, 200)
