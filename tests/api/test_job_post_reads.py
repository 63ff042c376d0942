"""POST /jobs/ reads its agent and the fleet in the API key's statement (workers.api
JobListView.auth_companion): two statements a dispatch, with every check and error as before."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from agents import services as agent_services
from agents.models import Agent
from controlplane.models import ApiKey
from workers.models import Job, JobStatus

BODY = {"agent": "support", "room": "r-1", "transport": "local"}


def _client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_a_dispatch_is_the_key_lookup_with_its_reads_and_the_insert(
    api_key_factory: Callable[..., tuple[ApiKey, str]], active_agent: Agent, online_worker: Any
) -> None:
    online_worker("w1@reads")
    _, raw = api_key_factory("jobs:write", "read")
    client = _client(raw)
    client.post("/api/v1/jobs/", {**BODY, "room": "warm-up"}, format="json")  # the once-a-minute last_used_at stamp
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/api/v1/jobs/", BODY, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["assigned_worker"] == "w1@reads" and response.json()["status"] == JobStatus.ASSIGNED
    sqls = [q["sql"] for q in queries.captured_queries]
    assert len(sqls) == 2, sqls
    assert "controlplane_apikey" in sqls[0] and "agents_agent" in sqls[0] and "workers_worker" in sqls[0]
    assert sqls[1].startswith('INSERT INTO "workers_job"')


def test_a_dispatch_that_finds_no_free_worker_tries_once_more_without_reading_its_row_back(
    api_key_factory: Callable[..., tuple[ApiKey, str]], active_agent: Agent, django_capture_on_commit_callbacks: Any
) -> None:
    _, raw = api_key_factory("jobs:write", "read")
    client = _client(raw)
    client.post("/api/v1/jobs/", {**BODY, "room": "warm-up"}, format="json")
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/jobs/", BODY, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["status"] == JobStatus.PENDING
    sqls = [q["sql"] for q in queries.captured_queries]
    # the key lookup with its reads, the queue's room, the INSERT, then the second try's
    # fleet read: the job's worker type comes from the request, not from its row
    assert sqls[2].startswith('INSERT INTO "workers_job"'), sqls
    assert len(sqls) == 4 and "workers_worker" in sqls[3], sqls
    assert not any(sql.startswith('SELECT "workers_job"."worker_type"') for sql in sqls), sqls


def test_a_revoked_or_unknown_key_is_refused_and_nothing_is_dispatched(
    api_key_factory: Callable[..., tuple[ApiKey, str]], active_agent: Agent
) -> None:
    key, raw = api_key_factory("jobs:write", "read")
    key.revoke()
    for bearer in (raw, raw[:-2] + "xx"):
        response = _client(bearer).post("/api/v1/jobs/", BODY, format="json")
        assert response.status_code == 401, response.content
        assert response.json()["detail"] == "Unknown or revoked API key."
    assert not Job.objects.exists()


def test_a_key_without_the_scope_gets_403_before_the_body_is_judged(
    api_key_factory: Callable[..., tuple[ApiKey, str]], active_agent: Agent
) -> None:
    _, raw = api_key_factory("read")
    assert _client(raw).post("/api/v1/jobs/", {**BODY, "agent": "nobody"}, format="json").status_code == 403
    assert not Job.objects.exists()


def test_malformed_json_is_a_401_without_a_key_and_a_400_with_one(
    api_key_factory: Callable[..., tuple[ApiKey, str]], active_agent: Agent
) -> None:
    _, raw = api_key_factory("jobs:write", "read")
    bad = b'{"agent": "support", "room": '
    anonymous = APIClient().post("/api/v1/jobs/", bad, content_type="application/json")
    assert anonymous.status_code == 401
    refused = _client(raw).post("/api/v1/jobs/", bad, content_type="application/json")
    assert refused.status_code == 400 and "JSON parse error" in refused.json()["detail"]


def test_unknown_inactive_and_trimmed_agents_are_judged_on_the_validated_name(
    api_key_factory: Callable[..., tuple[ApiKey, str]], active_agent: Agent
) -> None:
    _, raw = api_key_factory("jobs:write", "read")
    client = _client(raw)
    assert client.post("/api/v1/jobs/", {**BODY, "agent": "ghost"}, format="json").status_code == 404
    # the serializer trims the name: the read that rode along (for " support ") is not used
    trimmed = client.post("/api/v1/jobs/", {**BODY, "agent": " support "}, format="json")
    assert trimmed.status_code == 201 and trimmed.json()["agent"] == "support"
    paused = agent_services.agent_create(agent_id="drafty", instructions="Draft.", actor="test",
                                         llm_config={"provider": "openai", "model": "gpt-4o-mini"})
    response = client.post("/api/v1/jobs/", {**BODY, "agent": paused.agent_id}, format="json")
    assert response.status_code == 409 and "only active agents accept jobs" in response.json()["detail"]
    # a number is a name to DRF's CharField ("7"), read the ordinary way: no such agent
    assert client.post("/api/v1/jobs/", {**BODY, "agent": 7}, format="json").status_code == 404
