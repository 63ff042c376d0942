"""The dashboard in the embedded mode (`manage.py embedded`: one process, SQLite, in-memory
broker and channel layer), in headless Chromium: the playground talks to the demo agent
(OpenAI providers pointed at the loopback double) and the live page follows it."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.dashboard.live_server import OUTPUT, ROOT, free_port, log_in, screenshot
from tests.doubles.fixtures import openai_double  # noqa: F401
from tests.doubles.openai_server import OpenAIDouble, Reply

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]
PASSWORD = "embedded-pass-123"


class EmbeddedServer:
    def __init__(self, var_dir: Path, openai_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "PYTEST_CURRENT_TEST")}
        self.env.update({"CONTROLPLANE_VAR_DIR": str(var_dir), "OPENAI_BASE_URL": openai_url, "OPENAI_API_KEY": "sk-test-double",
                         "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "controlplane.settings"})
        self.log_path = OUTPUT / "logs" / f"embedded-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def manage(self, *args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True, capture_output=True, timeout=120)

    def start(self) -> EmbeddedServer:
        self.manage("migrate", "--noinput", "-v0")
        self.manage("load_demo")
        self.manage("ensure_login", "--username", "admin", "--password", PASSWORD)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "manage.py", "embedded", "--port", str(self.port)], cwd=ROOT, env=self.env,
                                     stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text(errors="replace")
            try:
                with urllib.request.urlopen(f"{self.url}/health/live", timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the embedded server did not come up:\n" + self.log_path.read_text(errors="replace"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def embedded(tmp_path: Path, openai_double: OpenAIDouble) -> Iterator[EmbeddedServer]:  # noqa: F811
    server = EmbeddedServer(tmp_path, openai_double.base_url).start()
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
