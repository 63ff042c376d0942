"""Jobs API: dispatch (validation, idempotency, 404/409, 429 + Retry-After), follow, cancel."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from agents.models import Agent
from workers.models import Job, JobStatus

pytestmark = pytest.mark.django_db


def dispatch(client: APIClient, key: str | None = None, **body: Any) -> Any:
    payload = {"agent": "support", "room": "room-1", **body}
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post("/api/v1/jobs/", payload, format="json", **headers)


def test_dispatch_returns_201_with_the_pending_job(api_client: APIClient, active_agent: Agent) -> None:
    response = dispatch(api_client, metadata={"caller": "+15550100"}, priority=2, participant_identity="caller-1")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["job_id"].startswith("job_") and body["status"] == "pending"
    assert body["agent"] == "support" and body["agent_version"] == 1 and body["room"] == "room-1"
    assert body["priority"] == 2 and body["participant_identity"] == "caller-1" and body["transport"] == "local"
    assert body["metadata"] == {"caller": "+15550100"} and body["session_id"] is None
    job = Job.objects.get(pk=body["job_id"])
    assert job.api_key == api_client.api_key and job.status == JobStatus.PENDING


def test_defaults_are_priority_5_and_the_local_transport(api_client: APIClient, active_agent: Agent) -> None:
    body = dispatch(api_client).json()
    assert body["priority"] == 5 and body["transport"] == "local" and body["metadata"] == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"agent": None}, "agent"),
        ({"room": ""}, "room"),
        ({"room": "   "}, "room"),
        ({"room": "r" * 256}, "room"),
        ({"priority": 0}, "priority"),
        ({"priority": 11}, "priority"),
        ({"priority": "high"}, "priority"),
        ({"priority": True}, "priority"),
        ({"metadata": ["a", "b"]}, "metadata"),
        ({"metadata": {"k": "\x00"}}, "metadata"),
        ({"transport": "carrier-pigeon"}, "transport"),
        ({"participant_identity": "p" * 256}, "participant_identity"),
        ({"queue": "fast"}, "queue"),
    ],
)
def test_invalid_dispatch_gets_400_naming_the_field(api_client: APIClient, active_agent: Agent, body: dict[str, Any], field: str) -> None:
    response = dispatch(api_client, **body)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not Job.objects.exists()


def test_a_missing_room_is_named(api_client: APIClient, active_agent: Agent) -> None:
    response = api_client.post("/api/v1/jobs/", {"agent": "support"}, format="json")
    assert response.status_code == 400 and response.json()["room"] == ["This field is required."]


def test_livekit_transport_without_credentials_is_refused_naming_the_field(api_client: APIClient, active_agent: Agent) -> None:
    response = dispatch(api_client, transport="livekit")
    assert response.status_code == 400 and response.json()["field"] == "transport"


def test_an_unknown_agent_gets_404(api_client: APIClient, db: Any) -> None:
    response = dispatch(api_client, agent="nobody")
    assert response.status_code == 404 and response.json()["field"] == "agent" and "nobody" in response.json()["detail"]


def test_an_agent_that_is_not_active_gets_409(api_client: APIClient, configured_agent: Agent) -> None:
    response = dispatch(api_client)
    assert response.status_code == 409 and response.json()["field"] == "agent"
    assert not Job.objects.exists()


def test_the_same_idempotency_key_and_body_return_the_same_job(api_client: APIClient, active_agent: Agent) -> None:
    first = dispatch(api_client, key="order-42", metadata={"a": 1})
    again = dispatch(api_client, key="order-42", metadata={"a": 1})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["job_id"] == first.json()["job_id"] and Job.objects.count() == 1


def test_the_same_idempotency_key_with_another_body_gets_409(api_client: APIClient, active_agent: Agent) -> None:
    assert dispatch(api_client, key="order-42", room="a").status_code == 201
    response = dispatch(api_client, key="order-42", room="b")
    assert response.status_code == 409 and "Idempotency-Key" in response.json()["detail"]
    assert Job.objects.count() == 1


def test_idempotency_keys_belong_to_one_api_key(client_with_scopes: Callable[..., APIClient], active_agent: Agent) -> None:
    one, two = client_with_scopes("jobs:write", name="one"), client_with_scopes("jobs:write", name="two")
    assert dispatch(one, key="k").status_code == 201 and dispatch(two, key="k").status_code == 201
    assert Job.objects.count() == 2


@pytest.mark.parametrize("key", ["", "   ", "k" * 256, "tab\there"])
def test_a_bad_idempotency_key_gets_400_naming_the_header(api_client: APIClient, active_agent: Agent, key: str) -> None:
    response = dispatch(api_client, key=key)
    assert response.status_code == 400 and "Idempotency-Key" in response.json(), response.content


def test_a_full_queue_gets_429_with_retry_after(api_client: APIClient, active_agent: Agent, settings: Any) -> None:
    settings.JOB_QUEUE_LIMIT = 2
    assert dispatch(api_client, key="a-key", room="a").status_code == 201
    assert dispatch(api_client, room="b").status_code == 201
    response = dispatch(api_client, room="c")
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert response.json()["error"] == "throttled" and "queue" in response.json()["detail"]
    assert Job.objects.count() == 2
    # a replay of an accepted request is still answered: it adds nothing to the queue
    assert dispatch(api_client, key="a-key", room="a").status_code == 200


def test_a_key_past_its_rate_limit_gets_429_with_retry_after(
    client_with_scopes: Callable[..., APIClient], active_agent: Agent, settings: Any
) -> None:
    settings.DISPATCH_RATE_LIMIT_PER_MINUTE = 3
    busy, other = client_with_scopes("jobs:write", name="busy"), client_with_scopes("jobs:write", name="other")
    for i in range(3):
        assert dispatch(busy, room=f"r{i}").status_code == 201
    response = dispatch(busy, room="r4")
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60
    assert dispatch(other, room="r5").status_code == 201


def test_list_filters_by_status_and_agent_and_paginates(api_client: APIClient, active_agent: Agent) -> None:
    ids = [dispatch(api_client, room=f"r{i}").json()["job_id"] for i in range(3)]
    api_client.post(f"/api/v1/jobs/{ids[0]}/cancel")
    pending = api_client.get("/api/v1/jobs/?status=pending").json()
    assert pending["count"] == 2 and {j["job_id"] for j in pending["results"]} == set(ids[1:])
    assert api_client.get("/api/v1/jobs/?status=cancelled").json()["results"][0]["job_id"] == ids[0]
    assert api_client.get("/api/v1/jobs/?agent=support").json()["count"] == 3
    assert api_client.get("/api/v1/jobs/?agent=nobody").json()["count"] == 0
    page = api_client.get("/api/v1/jobs/?limit=1").json()
    assert page["count"] == 3 and len(page["results"]) == 1 and page["next"]
    response = api_client.get("/api/v1/jobs/?status=sleeping")
    assert response.status_code == 400 and "status" in response.json()


def test_retrieve_and_404(api_client: APIClient, job: Job) -> None:
    assert api_client.get(f"/api/v1/jobs/{job.job_id}/").json()["room"] == "room-1"
    response = api_client.get("/api/v1/jobs/job_missing/")
    assert response.status_code == 404 and "job_missing" in response.json()["detail"]


def test_cancel_then_cancel_again_is_409(api_client: APIClient, job: Job) -> None:
    response = api_client.post(f"/api/v1/jobs/{job.job_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert response.json()["failure_reason"] == "cancelled by apikey:admin-key"
    again = api_client.post(f"/api/v1/jobs/{job.job_id}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]
    assert api_client.post("/api/v1/jobs/job_missing/cancel").status_code == 404


def test_cancelling_a_job_ends_its_live_session(api_client: APIClient, job: Job, live_session: Any, listener: Any) -> None:
    response = api_client.post(f"/api/v1/jobs/{job.job_id}/cancel")
    assert response.status_code == 200 and response.json()["session_id"] == live_session.session_id
    message = listener.receive()
    assert message["command"] == "end" and message["reason"] == "cancelled by apikey:admin-key"
