"""The session page tags replies of the scripted model, so nobody mistakes them for a
language model's; replies of a model are not tagged. Real daphne, PostgreSQL, Redis, Chromium."""
from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from agents.models import Agent
from sessions.event_sink import DjangoEventSink
from sessions.models import AgentSession
from runtime import events as ev
from tests.dashboard.live_server import DaphneServer, db, log_in

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_scripted_replies_carry_a_scripted_tag_and_model_replies_do_not(
        dashboard_server: DaphneServer, active_agent: Agent, operator: Any, browser_page: Any) -> None:
    page = browser_page
    session = db(lambda: AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version,
                                                     room_id="playground-1", status="active"))
    sink = DjangoEventSink(session.session_id)
    sink.emit(ev.SessionStarted(session_id=session.session_id, agent_id="support", transport="local"))
    for speech, text, scripted in (("sp1", "The weather in Paris is rainy, 18°C.", True),
                                   ("sp2", "Glad to help with anything else.", False)):
        sink.emit(ev.SpeechCreated(speech_id=speech, source="generate_reply"))
        sink.emit(ev.ResponseGenerated(speech_id=speech, text=text, model="scripted" if scripted else "gpt-4o-mini",
                                       scripted=scripted))
    assert sink.close()  # stored; left open, the sink would keep the writer thread busy for every later test
    log_in(page, dashboard_server.url, "operator", "operator-pass-123", next_path=f"/sessions/{session.session_id}/")
    agent_lines = page.locator("#transcript .line.agent")
    expect(agent_lines).to_have_count(2)
    expect(agent_lines.nth(0)).to_contain_text("The weather in Paris is rainy")
    expect(agent_lines.nth(0).locator(".tag.scripted")).to_have_text("scripted")
    expect(agent_lines.nth(1).locator(".tag.scripted")).to_have_count(0)
