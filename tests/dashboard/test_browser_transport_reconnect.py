"""The live session page shows the call's transport reconnecting and coming back (LiveKit's
`reconnecting`/`reconnected` events, as a worker's sink stores and broadcasts them), in
headless Chromium against a real daphne server, PostgreSQL and the Redis channel layer."""
from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from agents.models import Agent
from runtime import events as ev
from sessions.event_sink import DjangoEventSink
from sessions.models import AgentSession
from tests.dashboard.live_server import DaphneServer, db, log_in

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_an_operator_sees_the_call_reconnect_to_livekit(
    dashboard_server: DaphneServer, active_agent: Agent, operator: Any, browser_page: Any
) -> None:
    page = browser_page
    session = db(lambda: AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version,
                                                     room_id="call-9", status="active", transport="livekit"))
    sid = session.session_id
    sink = DjangoEventSink(sid)
    sink.emit(ev.SessionStarted(session_id=sid, agent_id="support", transport="livekit"))
    assert sink.flush()
    log_in(page, dashboard_server.url, "operator", "operator-pass-123", next_path=f"/sessions/{sid}/")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")

    sink.emit(ev.Reconnecting(transport="livekit"))
    sink.emit(ev.StateChanged(old_state="active", new_state="disconnected"))
    assert sink.flush()
    expect(page.locator("#transcript")).to_contain_text("connection lost · reconnecting to livekit…")
    sink.emit(ev.Reconnected(transport="livekit", downtime_ms=1834.6))
    sink.emit(ev.StateChanged(old_state="disconnected", new_state="active"))
    assert sink.flush()
    expect(page.locator("#transcript")).to_contain_text("reconnected after 1835 ms")
