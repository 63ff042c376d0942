"""The whole loop in headless Chromium: playground → job → a real celery worker running the
voice runtime (LLM, STT and TTS on the loopback OpenAI double) → events through the Redis
channel layer → the page; operator say / interrupt / end from the live page; the overview
updating from fleet events."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from agents.models import Agent
from sessions.models import AgentSession, SessionEvent
from tests.dashboard.live_server import DaphneServer, db, log_in, screenshot
from tests.doubles.fixtures import double_egress_env
from tests.doubles.openai_server import OpenAIDouble, Reply
from tests.workers.fleet import Fleet
from workers.dispatch import job_cancel_request, job_dispatch
from workers.models import Job, JobStatus

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]
KEY_ENV = "DASHBOARD_TEST_OPENAI_KEY"
LONG_SPEECH = (
    "Thank you for calling. Before we start, let me read out our opening hours, our returns policy, and a few tips "
    "about tracking your order online, which most customers find useful, so please bear with me for a little while."
)


@pytest.fixture
def concierge(agent_on_double: Callable[..., Agent]) -> Agent:
    return agent_on_double("concierge", key_env=KEY_ENV, instructions="You are a concise hotel concierge.",
                           tools=["get_weather"])


@pytest.fixture
def worker_env() -> dict[str, str]:
    return {KEY_ENV: "sk-test-double", **double_egress_env(KEY_ENV)}


def test_an_operator_talks_in_the_playground_then_interrupts_and_ends_the_live_session(
    dashboard_server: DaphneServer, concierge: Agent, fleet_worker: Fleet, openai_double: OpenAIDouble,  # noqa: F811
    operator: Any, browser_page: Any,
) -> None:
    page = browser_page
    page.on("dialog", lambda dialog: dialog.accept())
    openai_double.chat.push(Reply.tool("get_weather", {"city": "Paris"}), Reply.message("It is sunny in Paris today."))

    # Playground: start a session and talk to the agent by text.
    log_in(page, dashboard_server.url, "operator", "operator-pass-123", next_path="/playground/")
    page.select_option("#pg-agent", "concierge")
    page.click("#pg-start-btn")
    expect(page.locator("#pg-text")).to_be_enabled(timeout=40_000)
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    page.fill("#pg-text", "What's the weather in Paris?")
    page.press("#pg-text", "Enter")
    transcript = page.locator("#transcript")
    expect(transcript.locator(".line.user").last).to_contain_text("What's the weather in Paris?", timeout=20_000)
    expect(transcript.locator(".line.agent").last).to_contain_text("It is sunny in Paris today.", timeout=20_000)
    tool = page.locator("#tool-calls tbody tr").first
    expect(tool).to_contain_text("get_weather")
    expect(tool.locator(".result")).to_contain_text("The weather in Paris is")
    expect(page.locator("#latency-chart svg rect.bar").first).to_be_visible()
    screenshot(page, "playground")
    session_id = page.evaluate("window.__playground.sessionId")
    job_id = page.evaluate("window.__playground.jobId")

    # Overview: the worker, the running job and the live session.
    page.goto(f"{dashboard_server.url}/")
    expect(page.locator("#workers")).to_contain_text("@fleet")
    expect(page.locator("#live-sessions")).to_contain_text(session_id)
    expect(page.locator("[data-job-count=running]")).to_have_text("1")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    screenshot(page, "overview")

    # The live page of that session: say something, then end the call.
    page.goto(f"{dashboard_server.url}/sessions/{session_id}/")
    expect(page.locator("#session-root")).to_have_attribute("data-replayed", "1")
    expect(transcript).to_contain_text("It is sunny in Paris today.")
    page.fill("#say-text", "One moment please.")
    page.click("#btn-say")
    expect(transcript.locator(".line.agent").last).to_contain_text("One moment please.", timeout=20_000)
    expect(transcript).to_contain_text("⚑ operator · say")
    expect(page.locator("#agent-state")).to_have_text("listening", timeout=20_000)
    page.click("#btn-end")
    expect(transcript).to_contain_text("session ended", timeout=20_000)
    expect(page.locator("#session-status")).to_have_text("disconnected")
    expect(page.locator("#btn-interrupt")).to_be_disabled()
    db(lambda: _wait_completed(job_id))
    stored = db(lambda: list(SessionEvent.objects.filter(session_id=session_id).values_list("seq", flat=True)))
    shown = page.evaluate("window.__session.events.map(e => e.seq)")
    assert shown == stored == list(range(1, len(stored) + 1))
    actions = db(lambda: list(SessionEvent.objects.filter(session_id=session_id, type="operator_action").values_list("data", flat=True)))
    assert {(a["action"], a["by"]) for a in actions} >= {("message", "operator"), ("say", "operator")}

    # The overview follows the fleet live: a new session appears without a reload.
    page.goto(f"{dashboard_server.url}/")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    expect(page.locator("#live-sessions")).not_to_contain_text(session_id)
    job = db(lambda: job_dispatch(agent_id="concierge", room="walk-in", transport="local", metadata={"greeting": LONG_SPEECH}))
    walk_in = db(lambda: _wait_session(job.job_id))
    expect(page.locator("#live-sessions")).to_contain_text(walk_in, timeout=20_000)

    # Interrupt the agent mid-greeting from its live page: playout stops, and the part the
    # caller never heard is struck out.
    page.click(f"#live-sessions a:has-text('{walk_in}')")
    expect(page.locator("#agent-speaking")).to_have_attribute("data-on", "1", timeout=20_000)
    expect(page.locator("#agent-state")).to_have_text("speaking")
    page.click("#btn-interrupt")
    expect(transcript).to_contain_text("interrupted (operator)", timeout=20_000)
    interrupted = transcript.locator(".line.agent.interrupted")
    expect(interrupted).to_have_count(1)
    expect(interrupted.locator(".unheard")).not_to_have_text("")
    expect(transcript).to_contain_text("⚑ operator · interrupt")
    expect(page.locator("#agent-speaking")).to_have_attribute("data-on", "0")
    screenshot(page, "live-session-worker")
    page.click("#btn-end")
    expect(transcript).to_contain_text("session ended", timeout=20_000)
    db(lambda: _wait_completed(job.job_id))


def test_an_operator_interrupts_a_long_say_they_started(
    dashboard_server: DaphneServer, concierge: Agent, fleet_worker: Fleet, openai_double: OpenAIDouble,  # noqa: F811
    operator: Any, browser_page: Any,
) -> None:
    """The commands of one session must not queue behind a speech: an interrupt sent while
    the agent is saying what the operator asked for stops it at once."""
    page = browser_page
    job = db(lambda: job_dispatch(agent_id="concierge", room="desk", transport="local"))
    session_id = db(lambda: _wait_session(job.job_id))
    log_in(page, dashboard_server.url, "operator", "operator-pass-123", next_path=f"/sessions/{session_id}/")
    expect(page.locator("#session-root")).to_have_attribute("data-replayed", "1")
    page.fill("#say-text", LONG_SPEECH)
    page.click("#btn-say")
    expect(page.locator("#agent-state")).to_have_text("speaking", timeout=20_000)
    page.click("#btn-interrupt")
    transcript = page.locator("#transcript")
    # Without the interrupt taking effect the speech plays out and nothing is interrupted.
    expect(transcript).to_contain_text("interrupted (operator)", timeout=20_000)
    expect(transcript.locator(".line.agent.interrupted .unheard")).not_to_have_text("")
    db(lambda: job_cancel_request(job_id=job.job_id, actor="test"))


def _wait_completed(job_id: str) -> bool:
    from tests.helpers import wait_for

    wait_for(lambda: Job.objects.get(pk=job_id).status == JobStatus.COMPLETED, timeout=20, what="the job to complete")
    return True


def _wait_session(job_id: str) -> str:
    from tests.helpers import wait_for

    return wait_for(
        lambda: AgentSession.objects.filter(job_id=job_id, status="active").values_list("session_id", flat=True).first(),
        timeout=30, what="the walk-in session",
    )
