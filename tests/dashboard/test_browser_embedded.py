"""The dashboard in the embedded mode (`manage.py embedded`: one process, SQLite, in-memory
broker and channel layer), in headless Chromium: the playground talks to the demo agent
(OpenAI providers pointed at the loopback double) and the live page follows it."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.dashboard.live_server import EmbeddedServer, log_in, screenshot
from tests.doubles.openai_server import OpenAIDouble, Reply

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]
PASSWORD = "embedded-pass-123"


@pytest.fixture
def embedded(tmp_path: Path, openai_double: OpenAIDouble) -> Iterator[EmbeddedServer]:  # noqa: F811
    server = EmbeddedServer(tmp_path, PASSWORD, OPENAI_BASE_URL=openai_double.base_url, OPENAI_API_KEY="sk-test-double").start()
    yield server
    server.stop()


def test_the_embedded_mode_serves_the_playground_and_the_live_page(
    embedded: EmbeddedServer, openai_double: OpenAIDouble, browser_page: Any,  # noqa: F811
) -> None:
    page = browser_page
    page.on("dialog", lambda dialog: dialog.accept())
    openai_double.chat.push(Reply.tool("get_weather", {"city": "Lisbon"}), Reply.message("Lisbon is bright and warm today."))

    log_in(page, embedded.url, "admin", PASSWORD, next_path="/playground/")
    page.select_option("#pg-agent", "demo")
    page.click("#pg-start-btn")
    expect(page.locator("#pg-text")).to_be_enabled(timeout=40_000)
    page.fill("#pg-text", "How is the weather in Lisbon?")
    page.press("#pg-text", "Enter")
    transcript = page.locator("#transcript")
    expect(transcript.locator(".line.agent").last).to_contain_text("Lisbon is bright and warm today.", timeout=30_000)
    expect(page.locator("#tool-calls tbody tr").first.locator(".result")).to_contain_text("The weather in Lisbon is")
    session_id = page.evaluate("window.__playground.sessionId")

    page.goto(f"{embedded.url}/sessions/{session_id}/")
    expect(page.locator("#session-root")).to_have_attribute("data-replayed", "1")
    expect(transcript).to_contain_text("Lisbon is bright and warm today.")
    page.fill("#msg-text", "Thanks, that's all.")
    page.press("#msg-text", "Enter")
    expect(transcript.locator(".line.user").last).to_contain_text("Thanks, that's all.", timeout=20_000)
    page.click("#btn-end")
    expect(transcript).to_contain_text("session ended", timeout=20_000)
    shown = page.evaluate("window.__session.events.map(e => e.seq)")
    assert shown == list(range(1, len(shown) + 1))

    page.goto(f"{embedded.url}/")
    expect(page.locator("#workers")).to_contain_text("embedded")
    expect(page.locator("[data-job-count=completed]")).to_have_text("1", timeout=20_000)
    screenshot(page, "overview-embedded")
