"""The voice playground in headless Chromium against the embedded server started the README's
way (no provider variables: `load_demo` gives the demo agent the local providers). The fake
microphone and the in-page measurements are described in `tests/dashboard/voice.py`."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.live_server import EmbeddedServer
from tests.dashboard.voice import (
    SPEAKING_RMS, assert_reply_played_in_full, converse_and_barge_in, now, start_session, wait_for_reply_audio,
    wait_until_spoken,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
PASSWORD = "voice-pass-123"


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(tmp_path, PASSWORD).start()
    yield server
    server.stop()


def test_a_spoken_question_gets_a_spoken_answer_and_barge_in_stops_it(embedded: EmbeddedServer, mic_page: Page) -> None:
    start_session(mic_page, embedded.url, "admin", PASSWORD)
    result = converse_and_barge_in(mic_page, "voice-playground-mid-reply")
    print("embedded:", result)


def test_a_typed_question_runs_the_tool_and_the_spoken_reply_plays(embedded: EmbeddedServer, browser_page: Page) -> None:
    """Must show 2, the browser half: a fresh embedded run, no provider variables, the text box."""
    page = browser_page
    start_session(page, embedded.url, "admin", PASSWORD)
    asked = now(page)
    page.fill("#pg-text", "What's the weather in Paris?")
    page.press("#pg-text", "Enter")
    transcript = page.locator("#transcript")
    expect(transcript.locator(".line.user").first).to_contain_text("What's the weather in Paris?")
    tool_row = page.locator("#tool-calls tbody tr").first
    expect(tool_row.locator(".result")).to_contain_text("The weather in Paris is", timeout=20_000)
    expect(transcript.locator(".line.agent").first).to_contain_text("The weather in Paris is", timeout=20_000)
    wait_for_reply_audio(page, asked)
    wait_until_spoken(page)
    assert_reply_played_in_full(page, since=asked)
    assert page.evaluate("window.__voice.playback.peakRms") > 5 * SPEAKING_RMS
