"""Sessions API: list/detail, the event log after a seq, and operator actions."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from sessions.models import AgentSession, SessionStatus
from sessions.services import session_events_append

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(live_session: AgentSession) -> list[Any]:
    now = timezone.now()
    rows = [("session_started", now, {})] + [
        ("text_received", now + timedelta(milliseconds=i), {"text": f"message {i}"}) for i in range(1, 8)
    ] + [("turn_ended", now + timedelta(seconds=1), {"latency_ms": 420})]
    return session_events_append(session_id=live_session.session_id, events=rows)


def test_list_and_filters(api_client: APIClient, live_session: AgentSession) -> None:
    body = api_client.get("/api/v1/sessions/").json()
    assert body["count"] == 1 and body["results"][0]["session_id"] == live_session.session_id
    assert body["results"][0]["agent"] == "support" and body["results"][0]["job"] == live_session.job_id
    assert api_client.get("/api/v1/sessions/?status=active").json()["count"] == 1
    assert api_client.get("/api/v1/sessions/?status=disconnected").json()["count"] == 0
    assert api_client.get("/api/v1/sessions/?live=true").json()["count"] == 1
    assert api_client.get("/api/v1/sessions/?live=false").json()["count"] == 0
    assert api_client.get("/api/v1/sessions/?agent=support").json()["count"] == 1
    assert api_client.get(f"/api/v1/sessions/?job={live_session.job_id}").json()["count"] == 1
    response = api_client.get("/api/v1/sessions/?status=asleep")
    assert response.status_code == 400 and "status" in response.json()


def test_detail_and_404(api_client: APIClient, live_session: AgentSession) -> None:
    body = api_client.get(f"/api/v1/sessions/{live_session.session_id}/").json()
    assert body["status"] == "active" and body["participants"] == [] and body["room_id"] == "room-1"
    response = api_client.get("/api/v1/sessions/ses_missing/")
    assert response.status_code == 404 and "ses_missing" in response.json()["detail"]


def test_events_come_in_seq_order_after_the_given_seq(api_client: APIClient, live_session: AgentSession, events: list[Any]) -> None:
    url = f"/api/v1/sessions/{live_session.session_id}/events/"
    body = api_client.get(url).json()
    assert body["count"] == 9 and [e["seq"] for e in body["results"]] == list(range(1, 10))
    first = body["results"][0]
    assert first["session_id"] == live_session.session_id and first["type"] == "session_started" and first["at"]
    after = api_client.get(f"{url}?after_seq=7").json()
    assert [e["seq"] for e in after["results"]] == [8, 9] and after["results"][1]["data"] == {"latency_ms": 420}
    page = api_client.get(f"{url}?after_seq=2&limit=3").json()
    assert [e["seq"] for e in page["results"]] == [3, 4, 5] and page["count"] == 7 and page["next"]
    assert api_client.get(f"{url}?type=turn_ended").json()["count"] == 1


@pytest.mark.parametrize("after_seq", ["-1", "x", "1.5", str(2**63)])
def test_a_bad_after_seq_gets_400(api_client: APIClient, live_session: AgentSession, after_seq: str) -> None:
    response = api_client.get(f"/api/v1/sessions/{live_session.session_id}/events/?after_seq={after_seq}")
    assert response.status_code == 400 and "after_seq" in response.json()


def test_events_of_an_unknown_session_get_404(api_client: APIClient, db: Any) -> None:
    assert api_client.get("/api/v1/sessions/ses_missing/events/").status_code == 404


@pytest.mark.parametrize(
    ("action", "body", "command", "text"),
    [
        ("say", {"text": "One moment please."}, "say", "One moment please."),
        ("messages", {"text": "Where is my order?"}, "message", "Where is my order?"),
        ("interrupt", {}, "interrupt", None),
        ("end", {}, "end", None),
    ],
)
def test_operator_actions_reach_the_session_host(
    api_client: APIClient, live_session: AgentSession, listener: Any, action: str, body: dict[str, Any], command: str, text: str | None
) -> None:
    response = api_client.post(f"/api/v1/sessions/{live_session.session_id}/{action}", body, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {"session_id": live_session.session_id, "command": command, "status": "accepted"}
    message = listener.receive()
    assert message["type"] == "session.command" and message["command"] == command
    assert message["text"] == text and message["actor"] == "apikey:admin-key"


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("say", {}, "text"),
        ("say", {"text": ""}, "text"),
        ("say", {"text": "x" * 10_001}, "text"),
        ("messages", {"text": None}, "text"),
        ("messages", {"text": "hi", "role": "system"}, "role"),
        ("interrupt", {"now": True}, "now"),
        ("end", {"reason": "done"}, "reason"),
    ],
)
def test_invalid_action_bodies_get_400_naming_the_field(
    api_client: APIClient, live_session: AgentSession, action: str, body: dict[str, Any], field: str
) -> None:
    response = api_client.post(f"/api/v1/sessions/{live_session.session_id}/{action}", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content


def test_actions_on_a_session_that_is_not_live_get_409(api_client: APIClient, live_session: AgentSession) -> None:
    AgentSession.objects.filter(pk=live_session.pk).update(status=SessionStatus.DISCONNECTED)
    for action, body in (("say", {"text": "hello"}), ("messages", {"text": "hi"}), ("interrupt", {}), ("end", {})):
        response = api_client.post(f"/api/v1/sessions/{live_session.session_id}/{action}", body, format="json")
        assert response.status_code == 409 and "not live" in response.json()["detail"], action


def test_actions_on_an_unknown_session_get_404(api_client: APIClient, db: Any) -> None:
    response = api_client.post("/api/v1/sessions/ses_missing/say", {"text": "hi"}, format="json")
    assert response.status_code == 404


def test_the_operator_is_the_actor_when_logged_in(operator: Any, live_session: AgentSession, listener: Any) -> None:
    client = APIClient()
    client.force_login(operator)
    assert client.post(f"/api/v1/sessions/{live_session.session_id}/interrupt").status_code == 202
    assert listener.receive()["actor"] == "operator"
