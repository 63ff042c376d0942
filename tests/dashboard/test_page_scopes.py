"""Dashboard users hold the API's scopes, from their Django permissions: `is_staff` alone
watches nothing, and each action needs the scope its API route needs."""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from agents.models import Agent, AgentState
from controlplane.scopes import AGENTS_WRITE, JOBS_WRITE, READ, SCOPE_PERMISSIONS, SESSIONS_CONTROL
from sessions.access import user_can_control, user_can_watch
from sessions.models import AgentSession
from tests.dashboard.helpers import in_thread
from tests.dashboard.test_consumers import closed_with, communicator, login_cookie
from workers.models import Job

PAGES = ["dashboard:overview", "dashboard:agents", "dashboard:sessions", "dashboard:jobs"]


@pytest.fixture
def staff_with(django_user_model: Any) -> Any:
    """A staff user (may open the admin) holding the permissions of the scopes named."""

    def make(*scopes: str) -> Any:
        user = django_user_model.objects.create_user(username=f"staff-{len(scopes)}", password="staff-pass-123", is_staff=True)
        for name in {perm for scope in scopes for perm in SCOPE_PERMISSIONS[scope]}:
            app_label, codename = name.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return type(user).objects.get(pk=user.pk)  # a fresh row: permissions are cached per instance

    return make


@pytest.fixture
def job(active_agent: Agent) -> Job:
    return Job.objects.create(agent=active_agent, agent_version=1, room_name="r-1", room={"name": "r-1"})


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("name", [*PAGES, "dashboard:playground"])
def test_staff_without_permissions_may_not_watch(staff_with: Any, name: str) -> None:
    user = staff_with()
    assert not user_can_watch(user) and not user_can_control(user)
    assert logged_in(user).get(reverse(name)).status_code == 403


@pytest.mark.django_db
def test_the_read_scope_watches_but_acts_on_nothing(staff_with: Any, live_session: AgentSession, job: Job) -> None:
    user = staff_with(READ)
    client = logged_in(user)
    assert user_can_watch(user) and not user_can_control(user)
    for name in PAGES:
        assert client.get(reverse(name)).status_code == 200, name
    assert client.get(reverse("dashboard:playground")).status_code == 403
    assert client.post(reverse("dashboard:session-action", args=[live_session.session_id, "interrupt"])).status_code == 403
    assert client.post(reverse("dashboard:agent-deactivate", args=[live_session.agent.agent_id])).status_code == 403
    assert client.post(reverse("dashboard:job-cancel", args=[job.job_id])).status_code == 403
    assert client.get(reverse("dashboard:session", args=[live_session.session_id])).context["can_control"] is False


@pytest.mark.django_db
def test_sessions_control_acts_on_sessions_only(staff_with: Any, active_agent: Agent, job: Job) -> None:
    client = logged_in(staff_with(READ, SESSIONS_CONTROL))
    assert client.post(reverse("dashboard:agent-deactivate", args=[active_agent.agent_id])).status_code == 403
    assert client.post(reverse("dashboard:job-cancel", args=[job.job_id])).status_code == 403
    assert client.get(reverse("dashboard:playground")).status_code == 403  # dispatching needs jobs:write too


@pytest.mark.django_db
def test_each_action_is_let_through_by_its_scope(staff_with: Any, active_agent: Agent, job: Job) -> None:
    client = logged_in(staff_with(READ, AGENTS_WRITE, JOBS_WRITE, SESSIONS_CONTROL))
    assert client.post(reverse("dashboard:agent-deactivate", args=[active_agent.agent_id])).status_code == 302
    active_agent.refresh_from_db()
    assert active_agent.state == AgentState.INACTIVE
    assert client.post(reverse("dashboard:job-cancel", args=[job.job_id])).status_code == 302
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert client.get(reverse("dashboard:playground")).status_code == 200


@pytest.mark.django_db(transaction=True)
async def test_staff_without_permissions_may_not_open_the_sockets(staff_with: Any, live_session: AgentSession) -> None:
    cookie = await in_thread(login_cookie, await in_thread(staff_with))
    assert await closed_with(communicator(f"/ws/sessions/{live_session.session_id}/", cookie)) == 4403
    assert await closed_with(communicator("/ws/fleet/", cookie)) == 4403
    assert await closed_with(communicator(f"/ws/sessions/{live_session.session_id}/audio/", cookie)) == 4403
