"""POST /sessions/{id}/pause and /resume: delivered like the other operator actions, refused
with a 409 naming the status where the session state machine forbids them."""
from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from sessions.models import AgentSession, SessionStatus

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("status", "action"), [(SessionStatus.ACTIVE, "pause"), (SessionStatus.PAUSED, "resume")])
def test_pause_and_resume_reach_the_session_host(api_client: APIClient, live_session: AgentSession, listener: Any,
                                                 status: str, action: str) -> None:
    AgentSession.objects.filter(pk=live_session.pk).update(status=status)
    response = api_client.post(f"/api/v1/sessions/{live_session.session_id}/{action}", {}, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {"session_id": live_session.session_id, "command": action, "status": "accepted"}
    message = listener.receive()
    assert message["command"] == action and message["actor"] == "apikey:admin-key"


@pytest.mark.parametrize(("status", "action"), [
    (SessionStatus.PAUSED, "pause"), (SessionStatus.ACTIVE, "resume"), (SessionStatus.CONNECTED, "pause"),
    (SessionStatus.INITIALIZING, "resume"),
])
def test_pause_and_resume_out_of_turn_get_409_naming_the_status(api_client: APIClient, live_session: AgentSession,
                                                                status: str, action: str) -> None:
    AgentSession.objects.filter(pk=live_session.pk).update(status=status)
    response = api_client.post(f"/api/v1/sessions/{live_session.session_id}/{action}", {}, format="json")
    assert response.status_code == 409, response.content
    assert f"is {status}" in response.json()["detail"] and action in response.json()["detail"]


def test_an_ended_session_cannot_be_paused(api_client: APIClient, live_session: AgentSession) -> None:
    AgentSession.objects.filter(pk=live_session.pk).update(status=SessionStatus.DISCONNECTED)
    response = api_client.post(f"/api/v1/sessions/{live_session.session_id}/pause", {}, format="json")
    assert response.status_code == 409 and "not live" in response.json()["detail"]


def test_pause_needs_the_sessions_control_scope(client_with_scopes: Any, live_session: AgentSession) -> None:
    reader = client_with_scopes("read", name="reader")
    assert reader.post(f"/api/v1/sessions/{live_session.session_id}/pause", {}, format="json").status_code == 403


def test_the_session_command_pauses_through_the_channel_layer(live_session: AgentSession, listener: Any,
                                                              capsys: Any) -> None:
    call_command("session", "pause", live_session.session_id, "--actor", "night-shift")
    message = listener.receive()
    assert (message["command"], message["actor"]) == ("pause", "night-shift")
    assert "pause sent" in capsys.readouterr().out
    with pytest.raises(CommandError, match="only a paused session can resume"):
        call_command("session", "resume", live_session.session_id)
