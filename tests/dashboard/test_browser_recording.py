"""The replay page plays the call's recording in headless Chromium."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sessions.models import AgentSession, Recording, SessionStatus
from sessions.recording import CallRecorder
from tests.dashboard.live_server import OUTPUT, DaphneServer, db, log_in, require_services, screenshot
from tests.doubles.openai_server import tone_pcm
from tests.sessions.recording_helpers import FakeClock

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(120)]


@pytest.fixture
def media_server(settings: Any, tmp_path: Path) -> Iterator[DaphneServer]:
    require_services()
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.RECORDINGS_SPOOL_DIR = str(tmp_path / "spool")
    (OUTPUT / "logs").mkdir(parents=True, exist_ok=True)
    server = DaphneServer(OUTPUT / "logs", MEDIA_ROOT=settings.MEDIA_ROOT).start()
    yield server
    server.stop()


def _record_call(active_agent: Any, user_voice: np.ndarray) -> Recording:
    """A 6 s call through the real recorder: the user speaks, then the agent answers."""
    session = AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id="r",
                                          status=SessionStatus.DISCONNECTED, end_reason="caller hung up")
    clock = FakeClock()
    call = CallRecorder(session.session_id, clock=clock, autostart=False)
    agent_voice = np.frombuffer(tone_pcm(2.0), dtype="<i2")
    for i in range(300):  # 20 ms frames
        clock.now += 0.02
        if i * 320 < user_voice.size:
            call.user_audio(user_voice[i * 320:(i + 1) * 320], 16000)
        elif 150 <= i < 250:
            call.agent_audio(agent_voice[(i - 150) * 480:(i - 149) * 480], 24000)
        call.pump()
    recording = call.close()
    assert recording is not None
    return recording


def test_the_replay_page_plays_the_calls_recording(media_server: DaphneServer, active_agent: Any, operator: Any,
                                                   speech: Any, browser_page: Any) -> None:  # noqa: F811
    recording = db(_record_call, active_agent, speech.samples("Hello, I would like to book a table."))
    page = browser_page
    log_in(page, media_server.url, "operator", "operator-pass-123",
           next_path=f"/sessions/{recording.session_id}/replay")
    audio = page.locator("audio#recording")
    audio.wait_for(state="attached")
    state = page.evaluate("""() => new Promise((resolve) => {
        const a = document.querySelector('audio#recording');
        const report = (what) => resolve({what, duration: a.duration, error: a.error && a.error.code,
                                          time: a.currentTime});
        a.addEventListener('error', () => report('error'));
        a.addEventListener('ended', () => report('ended'));
        const start = () => { a.muted = true; a.playbackRate = 4; a.play().catch((e) => resolve({what: String(e)})); };
        if (a.readyState >= 1) start(); else a.addEventListener('loadedmetadata', start, {once: true});
    })""")
    assert state["what"] == "ended" and state["error"] is None, state
    assert state["duration"] == pytest.approx(recording.duration_ms / 1000, abs=0.05)
    assert state["duration"] == pytest.approx(6.0, abs=0.1)
    screenshot(page, "replay-recording")

    other = db(lambda: AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version,
                                                   room_id="r", status=SessionStatus.DISCONNECTED))
    page.goto(f"{media_server.url}/sessions/{other.session_id}/replay")
    assert page.locator("audio#recording").count() == 0
    assert "No recording" in page.locator("#no-recording").inner_text()
    response = page.request.get(f"{media_server.url}/sessions/{other.session_id}/recording")
    assert response.status == 404
