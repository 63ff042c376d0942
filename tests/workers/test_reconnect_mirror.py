"""The database mirror of a session's status: a transport reconnect is recorded as
disconnected → connected → active, not as the session's end."""
from __future__ import annotations

import pytest

from sessions.models import AgentSession, SessionStatus
from sessions.hosting import session_close, session_mirror_status

pytestmark = pytest.mark.django_db


def test_a_reconnect_goes_disconnected_then_connected_and_active(live_session: AgentSession) -> None:
    session_mirror_status(live_session.pk, "disconnected", final=False)
    row = AgentSession.objects.get(pk=live_session.pk)
    assert row.status == "disconnected" and row.ended_at is None and row.end_reason == ""
    session_mirror_status(live_session.pk, "connected", final=False)
    session_mirror_status(live_session.pk, "active", final=False)
    assert AgentSession.objects.get(pk=live_session.pk).status == "active"


def test_the_final_disconnected_is_left_to_the_worker_which_records_the_reason(live_session: AgentSession) -> None:
    session_mirror_status(live_session.pk, "disconnected", final=True)
    assert AgentSession.objects.get(pk=live_session.pk).status == "active"
    session_close(live_session.pk, error=None, reason="ended by operator")
    row = AgentSession.objects.get(pk=live_session.pk)
    assert (row.status, row.end_reason) == ("disconnected", "ended by operator") and row.ended_at is not None


def test_a_session_that_ends_while_reconnecting_gets_its_end(live_session: AgentSession) -> None:
    session_mirror_status(live_session.pk, "disconnected", final=False)
    session_close(live_session.pk, error=None, reason="room_disconnected")
    row = AgentSession.objects.get(pk=live_session.pk)
    assert (row.status, row.end_reason) == ("disconnected", "room_disconnected") and row.ended_at is not None


def test_a_session_that_fails_while_reconnecting_is_an_error(live_session: AgentSession) -> None:
    session_mirror_status(live_session.pk, "disconnected", final=False)
    session_close(live_session.pk, error="RuntimeError: boom", reason="worker_error")
    row = AgentSession.objects.get(pk=live_session.pk)
    assert row.status == "error" and "boom" in row.error and row.ended_at is not None
