"""The voice playground in production shape: daphne (web) and a real `celery worker` process
hosting the session, PostgreSQL and the Redis channel layer between them. The browser's audio
crosses to the worker and the agent's audio comes back over Redis; the demo agent runs on the
local providers (`load_demo --providers local`). (Barge-in timing is the embedded test's:
`test_browser_voice.py`; here the point is the path between the processes.)"""
from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import Page

from tests.dashboard.live_server import DaphneServer, db
from tests.dashboard.voice import ask_and_hear_the_reply, start_session
from tests.workers.fleet import Fleet

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


@pytest.fixture
def local_demo() -> None:
    db(call_command, "load_demo", providers="local", verbosity=0)


@pytest.fixture
def worker_env(local_demo: None) -> dict[str, str]:
    return {}  # the demo agent runs on the local providers: no keys


def test_voice_crosses_to_a_worker_process_and_back(dashboard_server: DaphneServer, fleet_worker: Fleet, operator: Any,
                                                     mic_page: Page) -> None:
    start_session(mic_page, dashboard_server.url, "operator", "operator-pass-123")
    print("worker:", ask_and_hear_the_reply(mic_page))
