"""Delivery: signed per Standard Webhooks, retried with back-off, refused for private addresses.

The task is called directly here (Celery's eager apply runs the retries in line); the
integration tests send the same task through Redis to a real worker."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from django.utils import timezone as django_timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from agents import services
from controlplane.celery import app
from sessions.event_sink import session_events_append_and_broadcast
from sessions.models import AgentSession
from webhooks.enqueue import enqueue_for_stored_events
from webhooks.models import DeliveryStatus, WebhookDelivery
from webhooks.services import webhook_delivery_attempt
from webhooks.tasks import deliver_webhook, requeue_stale

pytestmark = pytest.mark.django_db


@pytest.fixture
def call(active_agent: Any) -> AgentSession:
    return AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id="r1")


def _store(session: AgentSession, type_: str, data: dict[str, Any], capture: Any) -> list[WebhookDelivery]:
    """Store one event as the sink does and return the deliveries its listener made."""
    with capture(execute=True):  # the append's on-commit hooks: broadcast, then the webhook listener
        session_events_append_and_broadcast(session_id=session.session_id,
                                             events=[(type_, datetime.now(timezone.utc), data)])
    return list(WebhookDelivery.objects.filter(session_id=session.session_id, event_type=type_))


def test_a_delivery_carries_a_signature_a_standard_webhooks_verifier_accepts_and_tampering_breaks(
        call: AgentSession, endpoint_for: Any, receiver_factory: Any, django_capture_on_commit_callbacks: Any) -> None:
    receiver = receiver_factory()
    endpoint, secret = endpoint_for(receiver.url, "tool_called")
    [delivery] = _store(call, "tool_called", {"call_id": "c1", "name": "get_weather", "arguments": "{}"},
                        django_capture_on_commit_callbacks)

    deliver_webhook.apply(args=[str(delivery.pk)])

    [request] = receiver.requests
    assert request.headers["webhook-id"] == delivery.message_id
    assert request.headers["webhook-signature"].startswith("v1,")
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "tool_called" and payload["session_id"] == call.session_id
    assert payload["agent_id"] == call.agent.agent_id and payload["data"]["name"] == "get_weather"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"get_weather", b"get_weathex"), request.headers)
    shifted = {**request.headers, "webhook-timestamp": str(int(request.headers["webhook-timestamp"]) + 1)}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body, shifted)
    with pytest.raises(WebhookVerificationError):  # another endpoint's secret
        Webhook(endpoint_for(receiver.url, "tool_called")[1]).verify(request.body, request.headers)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (DeliveryStatus.SUCCEEDED, 1, 200)
    assert endpoint.secret == secret and secret not in json.dumps(payload)


def test_a_receiver_answering_500_twice_then_200_gets_the_event_on_the_third_try(
        call: AgentSession, endpoint_for: Any, receiver_factory: Any, django_capture_on_commit_callbacks: Any) -> None:
    receiver = receiver_factory(500, 500, 200)
    endpoint, secret = endpoint_for(receiver.url, "session_started")
    [delivery] = _store(call, "session_started", {"session_id": call.session_id}, django_capture_on_commit_callbacks)

    deliver_webhook.apply(args=[str(delivery.pk)])

    assert [r.answered for r in receiver.requests] == [500, 500, 200]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1  # one message, three attempts
    for request in receiver.requests:
        Webhook(secret).verify(request.body, request.headers)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code, delivery.last_error) == (
        DeliveryStatus.SUCCEEDED, 3, 200, "")


def test_back_off_doubles_and_a_delivery_out_of_attempts_fails_with_the_last_error(
        call: AgentSession, endpoint_for: Any, receiver_factory: Any, settings: Any,
        django_capture_on_commit_callbacks: Any) -> None:
    settings.WEBHOOK_RETRY_BASE_SECONDS = 2.0
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    receiver = receiver_factory(503, 503, 503, 503)
    endpoint_for(receiver.url, "session_started")
    [delivery] = _store(call, "session_started", {}, django_capture_on_commit_callbacks)

    delays = [webhook_delivery_attempt(delivery_id=str(delivery.pk)).retry_in for _ in range(4)]

    assert delays == [2.0, 4.0, None, None]  # the fourth call finds it settled and sends nothing
    assert len(receiver.requests) == 3
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (DeliveryStatus.FAILED, 3, 503)
    assert delivery.last_error == "the receiver answered 503"


def test_an_address_the_guard_refuses_at_send_time_fails_at_once_without_a_request(
        call: AgentSession, endpoint_for: Any, receiver_factory: Any, settings: Any,
        django_capture_on_commit_callbacks: Any) -> None:
    receiver = receiver_factory()
    endpoint_for(receiver.url, "session_started")  # allowed when created
    [delivery] = _store(call, "session_started", {}, django_capture_on_commit_callbacks)
    settings.TOOLS_ALLOW_PRIVATE_ADDRESSES = False

    deliver_webhook.apply(args=[str(delivery.pk)])

    assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1
    assert "not allowed" in delivery.last_error


def test_only_subscribed_types_and_the_filtered_agent_get_deliveries(
        call: AgentSession, endpoint_for: Any, receiver_factory: Any, active_agent: Any,
        django_capture_on_commit_callbacks: Any) -> None:
    other = services.agent_create(agent_id="other", instructions="x", llm_config={"provider": "openai"})
    receiver = receiver_factory()
    mine, _ = endpoint_for(receiver.url, "tool_called", agent=active_agent)
    endpoint_for(receiver.url, "tool_called", agent=other)
    everyone, _ = endpoint_for(receiver.url, "tool_called", "call_ended")

    assert _store(call, "audio_received", {"frames": 50}, django_capture_on_commit_callbacks) == []
    made = _store(call, "tool_called", {"name": "t"}, django_capture_on_commit_callbacks)
    assert {d.endpoint_id for d in made} == {mine.pk, everyone.pk}


def test_the_listener_enqueues_only_after_the_commit(call: AgentSession, endpoint_for: Any, receiver_factory: Any,
                                                     django_capture_on_commit_callbacks: Any) -> None:
    receiver = receiver_factory()
    endpoint_for(receiver.url, "tool_called")
    rows = session_events_append_and_broadcast(session_id=call.session_id,
                                               events=[("tool_called", datetime.now(timezone.utc), {})])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        made = enqueue_for_stored_events(rows)
    assert len(made) == 1 and len(callbacks) == 1  # the task is sent from the on-commit hook
    assert receiver.requests == []


def test_a_pending_delivery_whose_message_was_lost_is_sent_again_by_the_sweep(
        call: AgentSession, endpoint_for: Any, receiver_factory: Any) -> None:
    receiver = receiver_factory()
    endpoint, secret = endpoint_for(receiver.url, "session_started")
    lost = WebhookDelivery.objects.create(endpoint=endpoint, event_type="session_started", payload={"type": "x"})
    fresh = WebhookDelivery.objects.create(endpoint=endpoint, event_type="session_started", payload={"type": "y"})
    WebhookDelivery.objects.filter(pk=lost.pk).update(created_at=django_timezone.now() - timedelta(minutes=3))
    app.conf.task_always_eager = True  # run what the sweep sends, here
    try:
        assert requeue_stale.apply().get() == 1
    finally:
        app.conf.task_always_eager = False

    [request] = receiver.requests
    assert request.headers["webhook-id"] == lost.message_id
    Webhook(secret).verify(request.body, request.headers)
    assert WebhookDelivery.objects.get(pk=fresh.pk).status == DeliveryStatus.PENDING
