"""The dashboard reads the live state: Pause/Resume buttons by status, participants and the
metrics summary on the session page, the agent's call figures on its page."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.test import Client
from django.urls import reverse

from agents.models import Agent
from sessions.models import AgentSession, Participant, SessionStatus
from workers.dispatch import job_dispatch
from workers.models import Job, Worker

pytestmark = pytest.mark.django_db


def button(html: str, name: str) -> str:
    start = html.index(f'id="btn-{name}"')
    return html[start:html.index(">", start)]


def test_an_active_session_offers_pause_and_a_paused_one_resume(operator_client: Client, live_session: AgentSession) -> None:
    html = operator_client.get(reverse("dashboard:session", args=[live_session.session_id])).content.decode()
    assert "hidden" not in button(html, "pause") and "hidden" in button(html, "resume")
    AgentSession.objects.filter(pk=live_session.pk).update(status=SessionStatus.PAUSED)
    html = operator_client.get(reverse("dashboard:session", args=[live_session.session_id])).content.decode()
    assert "hidden" in button(html, "pause") and "hidden" not in button(html, "resume")


def test_the_dashboard_pause_action_is_delivered(operator_client: Client, live_session: AgentSession,
                                                worker: Worker) -> None:
    from tests.api.conftest import ControlListener

    # the session's job runs on `worker`, whose control group the listener stands in
    live_session.job = job_dispatch(agent_id=live_session.agent.agent_id, room="room-1")
    live_session.save(update_fields=["job"])
    Job.objects.filter(pk=live_session.job.pk).update(assigned_worker=worker)
    listener = ControlListener(worker.worker_id)
    try:
        response = operator_client.post(reverse("dashboard:session-action", args=[live_session.session_id, "pause"]))
        assert response.status_code == 202, response.content
        message = listener.receive()
        assert (message["command"], message["actor"]) == ("pause", "operator")
    finally:
        listener.close()
    refused = operator_client.post(reverse("dashboard:session-action", args=[live_session.session_id, "resume"]))
    assert refused.status_code == 409 and "only a paused session can resume" in refused.json()["error"]


def test_the_session_page_shows_participants_and_the_metrics_summary(operator_client: Client,
                                                                     live_session: AgentSession) -> None:
    Participant.objects.create(session=live_session, participant_id="PA_1", identity="caller-9", kind="sip",
                               joined_at=datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc))
    AgentSession.objects.filter(pk=live_session.pk).update(metrics={
        "turns": 3, "interruptions": 1, "tool_calls": 2, "tool_errors": 0, "tokens": {"total": 321},
        "latency_ms": {"end_to_end": {"count": 3, "p50": 640.0, "p95": 910.0, "max": 910.0}}})
    html = operator_client.get(reverse("dashboard:session", args=[live_session.session_id])).content.decode()
    assert 'data-identity="caller-9"' in html and ">sip<" in html
    assert "640.0 / 910.0 ms" in html and ">321<" in html


def test_the_agent_page_shows_its_call_figures(operator_client: Client, active_agent: Agent) -> None:
    Agent.objects.filter(pk=active_agent.pk).update(metrics={
        "calls": 12, "minutes": 30.5, "error_rate": 0.25, "latency_p50_ms": 700.0, "latency_p95_ms": 1200.0,
        "updated_at": "2026-11-21T10:00:00Z"})
    html = operator_client.get(reverse("dashboard:agent", args=[active_agent.agent_id])).content.decode()
    assert 'id="agent-calls">12<' in html and "30.5" in html and "25 %" in html and "700.0 / 1200.0 ms" in html
