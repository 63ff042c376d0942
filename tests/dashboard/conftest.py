"""Personas for the dashboard tests: a logged-in operator, an ended session, a viewer without
rights, and the browser tests' server and page."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Page, sync_playwright

from agents.models import Agent
from sessions.event_sink import wait_writer_idle
from sessions.models import AgentSession, SessionStatus
from tests.dashboard.live_server import CHROMIUM, CHROMIUM_ARGS, OUTPUT, DaphneServer, require_services
from tests.dashboard.voice import QUESTION, espeak_wav, fake_mic_page


@pytest.fixture(autouse=True, scope="session")
def _short_lived_thread_connections(django_db_setup: Any) -> None:
    """Consumers reach the ORM from executor threads that outlive a test; with persistent
    connections PostgreSQL would refuse to drop the test database at the end."""
    for alias in connections:
        connections[alias].settings_dict["CONN_MAX_AGE"] = 0


@pytest.fixture
def operator_client(client: Client, operator: Any) -> Client:
    """The test client, logged in as the operator."""
    client.force_login(operator)
    return client


@pytest.fixture
def ended_session(active_agent: Agent) -> AgentSession:
    return AgentSession.objects.create(
        agent=active_agent, agent_version=active_agent.version, room_id="room-0",
        status=SessionStatus.DISCONNECTED, ended_at=timezone.now(), end_reason="user hung up",
    )


@pytest.fixture
def viewer(django_user_model: Any) -> Any:
    """A logged-in user without staff rights: may not watch sessions."""
    return django_user_model.objects.create_user(username="viewer", password="viewer-pass-123")


@pytest.fixture(autouse=True)
def _sink_writer_idle() -> Any:
    """The sink's writer thread holds a database connection while a sink is open."""
    yield
    wait_writer_idle()


# --- browser tests: a real daphne server and headless Chromium ----------------------------
@pytest.fixture(scope="module")
def dashboard_server(django_db_setup: Any) -> Iterator[DaphneServer]:
    require_services()
    (OUTPUT / "logs").mkdir(parents=True, exist_ok=True)
    server = DaphneServer(OUTPUT / "logs").start()
    yield server
    server.stop()


@pytest.fixture
def browser_page() -> Iterator[Page]:
    """A 1280×800 page. Request it last: while Playwright runs, this thread has a running
    event loop, so ORM calls in the test go through `live_server.db`."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        context.close()
        browser.close()


@pytest.fixture
def mic_page(tmp_path: Path) -> Iterator[Page]:
    """A page whose microphone speaks the voice tests' question (espeak-ng)."""
    with fake_mic_page(espeak_wav(tmp_path / "question.wav", QUESTION)) as page:
        yield page
