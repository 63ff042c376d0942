"""Dashboard pages through Django's test client."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from agents.models import Agent, AgentState
from sessions.models import AgentSession
from sessions.services import session_events_append
from workers.models import Job, JobStatus, Worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def loaded_worker(online_worker: Callable[..., Worker]) -> Worker:
    """celery@node-1 running 3 jobs of 8, at 42% load."""
    return online_worker("celery@node-1", capacity=8, active_jobs=3, load=0.42)


@pytest.fixture
def failed_job(active_agent: Agent) -> Job:
    return Job.objects.create(agent=active_agent, agent_version=1, room_name="r-9", room={"name": "r-9"}, status=JobStatus.FAILED,
                              failure_reason="worker lost twice")


PAGES = ["dashboard:overview", "dashboard:agents", "dashboard:sessions", "dashboard:jobs", "dashboard:playground"]


@pytest.mark.parametrize("name", PAGES)
def test_pages_need_a_login(client: Client, name: str) -> None:
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("name", PAGES)
def test_a_user_without_session_rights_is_forbidden(client: Client, viewer: Any, name: str) -> None:
    client.force_login(viewer)
    assert client.get(reverse(name)).status_code == 403


def test_the_login_page_renders(client: Client) -> None:
    response = client.get("/accounts/login/?next=/")
    assert response.status_code == 200
    assert b'name="username"' in response.content


def test_overview_shows_workers_queue_sessions_and_errors(operator_client: Client, loaded_worker: Worker, live_session: AgentSession, failed_job: Job) -> None:
    session_events_append(session_id=live_session.session_id, events=[
        ("error", datetime.now(timezone.utc), {"source": "llm", "message": "upstream 503", "recoverable": True}),
        ("tool_error", datetime.now(timezone.utc), {"call_id": "c1", "name": "lookup_order", "error": "order service timed out"}),
    ])
    response = operator_client.get(reverse("dashboard:overview"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "celery@node-1" in html and "42%" in html and "3/8" in html and "closed" in html
    assert live_session.session_id in html
    assert "upstream 503" in html and "worker lost twice" in html and "lookup_order: order service timed out" in html
    assert 'data-job-count="failed">1<' in html
    panels = operator_client.get(reverse("dashboard:overview-panels"))
    assert panels.status_code == 200 and b"celery@node-1" in panels.content and b"<html" not in panels.content


def test_agent_list_and_detail_show_config_tools_versions_sessions(operator_client: Client, active_agent: Agent, live_session: AgentSession) -> None:
    html = operator_client.get(reverse("dashboard:agents")).content.decode()
    assert "support" in html and "gpt-4o-mini" in html
    html = operator_client.get(reverse("dashboard:agent", args=["support"])).content.decode()
    assert "You help customers with their orders." in html
    assert "lookup_order" in html and "alloy" in html and "v1" in html
    assert live_session.session_id in html
    assert "Deactivate" in html


def test_an_operator_deactivates_and_reactivates_an_agent(operator_client: Client, active_agent: Agent) -> None:
    response = operator_client.post(reverse("dashboard:agent-deactivate", args=["support"]))
    assert response.status_code == 302
    assert Agent.objects.get(agent_id="support").state == AgentState.INACTIVE
    operator_client.post(reverse("dashboard:agent-activate", args=["support"]))
    assert Agent.objects.get(agent_id="support").state == AgentState.ACTIVE


def test_an_illegal_lifecycle_change_is_a_message_not_an_error(operator_client: Client, active_agent: Agent) -> None:
    response = operator_client.post(reverse("dashboard:agent-activate", args=["support"]), follow=True)
    assert response.status_code == 200
    assert "cannot go from" in response.content.decode()


def test_lifecycle_changes_need_post_and_csrf(active_agent: Agent, operator: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.get(reverse("dashboard:agent-deactivate", args=["support"])).status_code == 405
    assert client.post(reverse("dashboard:agent-deactivate", args=["support"])).status_code == 403
    assert Agent.objects.get(agent_id="support").state == AgentState.ACTIVE


def test_the_live_session_page_carries_what_its_script_needs(operator_client: Client, live_session: AgentSession) -> None:
    html = operator_client.get(reverse("dashboard:session", args=[live_session.session_id])).content.decode()
    assert f'data-session-id="{live_session.session_id}"' in html
    assert 'data-mode="live"' in html and 'id="btn-interrupt"' in html and "csrfmiddlewaretoken" in html
    assert "session_view.js" in html and "session_page.js" in html


def test_an_ended_session_offers_replay_and_no_actions(operator_client: Client, ended_session: AgentSession) -> None:
    html = operator_client.get(reverse("dashboard:session", args=[ended_session.session_id])).content.decode()
    assert reverse("dashboard:session-replay", args=[ended_session.session_id]) in html
    assert 'id="actions" hidden' in html
    html = operator_client.get(reverse("dashboard:session-replay", args=[ended_session.session_id])).content.decode()
    assert 'data-mode="replay"' in html and 'id="btn-play"' in html


def test_an_unknown_session_page_is_404(operator_client: Client) -> None:
    assert operator_client.get(reverse("dashboard:session", args=["ses_nope"])).status_code == 404


def test_an_action_on_an_ended_session_is_refused_with_409(operator_client: Client, ended_session: AgentSession) -> None:
    response = operator_client.post(reverse("dashboard:session-action", args=[ended_session.session_id, "interrupt"]))
    assert response.status_code == 409
    assert "not live" in response.json()["error"]


def test_say_without_text_is_refused_with_400(operator_client: Client, live_session: AgentSession) -> None:
    response = operator_client.post(reverse("dashboard:session-action", args=[live_session.session_id, "say"]), {"text": "  "})
    assert response.status_code == 400
    assert response.json()["field"] == "text"


def test_an_unknown_action_is_404(operator_client: Client, live_session: AgentSession) -> None:
    response = operator_client.post(reverse("dashboard:session-action", args=[live_session.session_id, "explode"]))
    assert response.status_code == 404


def test_jobs_list_filters_by_status_and_agent(operator_client: Client, failed_job: Job, active_agent: Agent) -> None:
    other = Job.objects.create(agent=active_agent, agent_version=1, room_name="r-1", room={"name": "r-1"})
    html = operator_client.get(reverse("dashboard:jobs") + "?status=failed").content.decode()
    assert failed_job.job_id in html and other.job_id not in html
    html = operator_client.get(reverse("dashboard:jobs") + "?agent=support").content.decode()
    assert failed_job.job_id in html and other.job_id in html


def test_an_operator_cancels_a_pending_job(operator_client: Client, active_agent: Agent) -> None:
    job = Job.objects.create(agent=active_agent, agent_version=1, room_name="r-1", room={"name": "r-1"})
    html = operator_client.get(reverse("dashboard:job", args=[job.job_id])).content.decode()
    assert "Cancel job" in html
    operator_client.post(reverse("dashboard:job-cancel", args=[job.job_id]))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert "operator" in job.failure_reason
    status = operator_client.get(reverse("dashboard:job-status", args=[job.job_id])).json()
    assert status["status"] == "cancelled" and status["session_id"] is None


def test_cancelling_a_finished_job_shows_why_not(operator_client: Client, failed_job: Job) -> None:
    response = operator_client.post(reverse("dashboard:job-cancel", args=[failed_job.job_id]), follow=True)
    assert response.status_code == 200
    assert "cannot go from" in response.content.decode()


def test_the_playground_lists_active_agents_and_dispatches_a_local_job(operator_client: Client, active_agent: Agent) -> None:
    html = operator_client.get(reverse("dashboard:playground")).content.decode()
    assert '<option value="support"' in html
    response = operator_client.post(reverse("dashboard:playground-start"), {"agent": "support"})
    assert response.status_code == 201
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.transport == "local" and job.agent == active_agent and job.metadata["playground"] is True


def test_the_playground_refuses_an_inactive_agent(operator_client: Client, configured_agent: Agent) -> None:
    response = operator_client.post(reverse("dashboard:playground-start"), {"agent": "support"})
    assert response.status_code == 409


def test_operator_actions_need_csrf_and_control_rights(live_session: AgentSession, operator: Any, viewer: Any) -> None:
    url = reverse("dashboard:session-action", args=[live_session.session_id, "interrupt"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post(url).status_code == 403  # no CSRF token
    other = Client()
    other.force_login(viewer)
    assert other.post(url).status_code == 403  # no rights
    assert Client().post(url).status_code == 302  # not logged in: to the login page
