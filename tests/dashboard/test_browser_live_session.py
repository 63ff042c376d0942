"""The live session page in headless Chromium, against a real daphne server, PostgreSQL and
the Redis channel layer. Events come from a `DjangoEventSink` in this process, the way a
worker emits them."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from agents.models import Agent
from sessions.event_sink import DjangoEventSink
from sessions.models import AgentSession, SessionEvent
from runtime import events as ev
from tests.dashboard.live_server import DaphneServer, db, log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def a_turn(sink: DjangoEventSink, n: int, *, city: str = "Paris") -> None:
    turn, speech, call = f"t{n}", f"sp{n}", f"call{n}"
    sink.emit(ev.UserStateChanged(old_state="listening", new_state="speaking"))
    sink.emit(ev.VadSpeechStart())
    sink.emit(ev.SttResult(text="what's the weather", is_final=False))
    sink.emit(ev.SttResult(text=f"what's the weather in {city}", is_final=False))
    sink.emit(ev.VadSpeechEnd(speech_duration_ms=1400, silence_duration_ms=500))
    sink.emit(ev.UserStateChanged(old_state="speaking", new_state="listening"))
    sink.emit(ev.SttResult(text=f"What's the weather in {city}?", is_final=True, duration_ms=180))
    sink.emit(ev.TurnStarted(turn_id=turn, source="audio"))
    sink.emit(ev.TurnEnded(turn_id=turn, source="audio", text=f"What's the weather in {city}?", end_of_utterance_delay_ms=510))
    sink.emit(ev.AgentStateChanged(old_state="listening", new_state="thinking"))
    sink.emit(ev.ToolCalled(call_id=call, name="get_weather", arguments=f'{{"city": "{city}"}}', speech_id=speech))
    sink.emit(ev.ToolCompleted(call_id=call, name="get_weather", output=f"The weather in {city} is sunny, 21°C.", duration_ms=12.4))
    sink.emit(ev.SpeechCreated(speech_id=speech, source="generate_reply"))
    sink.emit(ev.AgentStateChanged(old_state="thinking", new_state="speaking"))
    sink.emit(ev.TtsAudio(speech_id=speech, text=f"It's sunny in {city}.", duration_ms=1300, ttfb_ms=95, bytes=62400))
    sink.emit(ev.TtsAudio(speech_id=speech, text="About 21 degrees.", duration_ms=1100, ttfb_ms=80, bytes=52800))
    sink.emit(ev.ResponseGenerated(speech_id=speech, text=f"It's sunny in {city}. About 21 degrees.", tool_steps=1))
    sink.emit(ev.MetricsCollected(metrics=ev.TurnMetrics(
        turn_id=turn, speech_id=speech, end_of_utterance_delay_ms=510 + 10 * n, stt_duration_ms=180, llm_ttft_ms=320 + 25 * n,
        tts_ttfb_ms=95, end_to_end_ms=1150 + 40 * n, llm_calls=2, tool_calls=1, total_tokens=260)))
    sink.emit(ev.AgentStateChanged(old_state="speaking", new_state="listening"))


def seqs_on_page(page: Any) -> list[int]:
    return page.evaluate("window.__session.events.map(e => e.seq)")


def stored_count(session_id: str) -> int:
    return db(lambda: SessionEvent.objects.filter(session_id=session_id).count())


def test_an_operator_watches_a_live_session_and_misses_nothing_across_reconnects(
    dashboard_server: DaphneServer, active_agent: Agent, operator: Any, browser_page: Any
) -> None:
    page = browser_page
    session = db(lambda: AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id="support-line-7", status="active"))
    sid = session.session_id
    sink = DjangoEventSink(sid)
    # Events from before the page opens arrive as replay.
    sink.emit(ev.SessionStarted(session_id=sid, agent_id="support", transport="livekit"))
    sink.emit(ev.AgentStateChanged(old_state="initializing", new_state="listening"))
    assert sink.flush()

    log_in(page, dashboard_server.url, "operator", "operator-pass-123", next_path=f"/sessions/{sid}/")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    expect(page.locator("#transcript")).to_contain_text("session started")

    # Live: a turn with interim and final transcript, a tool call, a spoken answer, metrics.
    sink.emit(ev.UserStateChanged(old_state="listening", new_state="speaking"))
    sink.emit(ev.SttResult(text="what's the weather in Par", is_final=False))
    assert sink.flush()
    expect(page.locator("#transcript .line.interim")).to_contain_text("what's the weather in Par")
    expect(page.locator("#user-speaking")).to_have_attribute("data-on", "1")
    a_turn(sink, 1)
    assert sink.flush()
    expect(page.locator("#transcript .line.user").last).to_contain_text("What's the weather in Paris?")
    expect(page.locator("#transcript .line.interim")).to_have_count(0)
    expect(page.locator("#transcript .line.agent").last).to_contain_text("It's sunny in Paris. About 21 degrees.")
    row = page.locator("#tool-calls tr[data-call-id=call1]")
    expect(row).to_contain_text("get_weather")
    expect(row).to_contain_text('{"city":"Paris"}')
    expect(row.locator(".result")).to_contain_text("sunny, 21°C")
    expect(row.locator(".dur")).to_have_text("12")
    expect(page.locator("#agent-state")).to_have_text("listening")
    expect(page.locator("#latency-chart svg rect.bar")).to_have_count(4)
    expect(page.locator("#latency-table tbody tr")).to_have_count(1)
    for n in (2, 3):
        a_turn(sink, n, city=["Oslo", "Lima"][n - 2])
    assert sink.flush()
    expect(page.locator("#latency-table tbody tr")).to_have_count(3)

    # The event log filters by kind and by text.
    page.select_option("#log-kind", "tools")
    expect(page.locator("#event-log .ev:visible")).to_have_count(6)
    page.fill("#log-filter", "Oslo")
    expect(page.locator("#event-log .ev:visible")).to_have_count(2)
    page.fill("#log-filter", "")
    page.select_option("#log-kind", "")
    screenshot(page, "live-session")

    # A real dropped connection: the server goes away while events keep coming.
    dashboard_server.stop()
    expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    for i in range(40):
        sink.emit(ev.TextReceived(text=f"while you were away {i}", source="api"))
    a_turn(sink, 4, city="Rome")
    assert sink.flush()
    dashboard_server.start()
    total = stored_count(sid)
    page.wait_for_function(f"window.__session.events.length && window.__session.events.at(-1).seq === {total}")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    expect(page.locator("#transcript")).to_contain_text("while you were away 39")
    assert seqs_on_page(page) == list(range(1, total + 1))

    # Drops in the middle of a fast stream: every seq exactly once, in order.
    def emit_stream() -> None:
        for i in range(300):
            sink.emit(ev.TextReceived(text=f"burst {i}", source="api"))
            time.sleep(0.003)

    emitter = threading.Thread(target=emit_stream)
    emitter.start()
    for _ in range(3):
        time.sleep(0.25)
        page.evaluate("window.__session.stream.drop()")
    emitter.join()
    assert sink.close()
    total = stored_count(sid)
    page.wait_for_function(f"window.__session.events.at(-1).seq === {total}")
    assert seqs_on_page(page) == list(range(1, total + 1))
    rows = page.evaluate("[...document.querySelectorAll('#event-log .ev')].map(r => Number(r.dataset.seq))")
    assert rows == list(range(1, total + 1))


def test_replay_rebuilds_an_ended_session_from_its_stored_events(
    dashboard_server: DaphneServer, active_agent: Agent, operator: Any, browser_page: Any
) -> None:
    page = browser_page
    session = db(lambda: AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id="r-replay", status="active"))
    sink = DjangoEventSink(session.session_id)
    sink.emit(ev.SessionStarted(session_id=session.session_id, agent_id="support", transport="local"))
    a_turn(sink, 1)
    a_turn(sink, 2, city="Kyoto")
    sink.emit(ev.SessionStopped(reason="user hung up", turns=2, duration_s=42.0))
    assert sink.close()
    db(lambda: AgentSession.objects.filter(pk=session.pk).update(status="disconnected"))
    total = stored_count(session.session_id)

    log_in(page, dashboard_server.url, "operator", "operator-pass-123", next_path=f"/sessions/{session.session_id}/replay")
    expect(page.locator("#session-root")).to_have_attribute("data-replayed", "1")
    expect(page.locator("#replay-label")).to_contain_text(f"{total} / {total}")
    expect(page.locator("#transcript")).to_contain_text("session ended: user hung up")
    expect(page.locator("#tool-calls tbody tr")).to_have_count(2)

    # Scrub back to before the second tool call.
    first_turn_end = db(lambda: SessionEvent.objects.filter(session=session, type="metrics_collected").order_by("seq").first().seq)
    page.eval_on_selector("#replay-pos", f"(el) => {{ el.value = {first_turn_end}; el.dispatchEvent(new Event('input')); }}")
    expect(page.locator("#tool-calls tbody tr")).to_have_count(1)
    expect(page.locator("#transcript")).not_to_contain_text("Kyoto")
    expect(page.locator("#conn")).to_contain_text(f"replay · {total} events")


def test_the_overview_follows_fleet_events_without_a_reload(
    dashboard_server: DaphneServer, active_agent: Agent, operator: Any, browser_page: Any
) -> None:
    from django.utils import timezone

    from controlplane.fleet_events import publish_fleet_event
    from workers.models import Worker

    page = browser_page
    log_in(page, dashboard_server.url, "operator", "operator-pass-123", next_path="/")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    expect(page.locator("#workers")).to_contain_text("No workers registered")
    refreshes = page.evaluate("window.__overview.refreshes")

    def worker_joins() -> None:
        Worker.objects.create(worker_id="celery@gpu-7", hostname="gpu-7", queue="celery@gpu-7.dq2", capacity=20, active_jobs=5,
                              load=0.25, circuit_state="half_open", last_heartbeat_at=timezone.now())
        publish_fleet_event("worker", {"worker_id": "celery@gpu-7", "status": "online"})

    db(worker_joins)
    row = page.locator("#workers tr[data-worker='celery@gpu-7']")
    expect(row).to_contain_text("5/20")
    expect(row).to_contain_text("25%")
    expect(row).to_contain_text("half_open")
    assert page.evaluate("window.__overview.fleetEvents") >= 1
    assert page.evaluate("window.__overview.refreshes") > refreshes
