"""The voice playground in headless Chromium against the embedded server started the README's
way (no provider variables: `load_demo` gives the demo agent the local providers).

The fake microphone plays an espeak-ng WAV of a question (then silence). Chromium starts the
file over each time the page opens the microphone, so the test asks by switching the mic on,
and barges in by switching it on again while the agent speaks: the same fake-mic speech, at a
moment the test chooses from what the page hears, not from a guessed timeline.

What is asserted is measured in the page: the playback AnalyserNode's RMS every 10 ms
(`window.__voice.playback.trace`) and, per barge-in, the time from the `interrupted` event
arriving to that analyser going silent (`window.__voice.playback.bargeIns`).
"""
from __future__ import annotations

import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.dashboard.live_server import CHROMIUM, CHROMIUM_ARGS, EmbeddedServer, log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
PASSWORD = "voice-pass-123"
QUESTION = "What is the weather like in Paris today?"
SILENT_RMS = 0.003  # the page's threshold (voice_playback.js)
SPEAKING_RMS = 0.02  # ~-34 dBFS: clearly a voice, far above the silent floor


def espeak_wav(path: Path, text: str, *, lead_s: float = 0.5, tail_s: float = 40.0) -> Path:
    """espeak-ng speech with silence around it: lead-in for the VAD, a long tail so the looping
    fake capture does not repeat the question during the test."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(raw), text], check=True, timeout=30)
    with wave.open(str(raw), "rb") as w:
        rate = w.getframerate()
        speech = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    pcm = np.concatenate([np.zeros(int(lead_s * rate), np.int16), speech, np.zeros(int(tail_s * rate), np.int16)])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(tmp_path, PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def mic_page(tmp_path: Path) -> Iterator[Page]:
    wav = espeak_wav(tmp_path / "question.wav", QUESTION)
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
        context.close()
        browser.close()


def start_session(page: Page, server: EmbeddedServer) -> str:
    log_in(page, server.url, "admin", PASSWORD, next_path="/playground/")
    page.select_option("#pg-agent", "demo")
    page.click("#pg-start-btn")
    expect(page.locator("#mic-btn")).to_be_enabled(timeout=60_000)  # the audio socket is ready
    return str(page.evaluate("window.__playground.sessionId"))


def events_of(page: Page, type_: str) -> list[dict[str, Any]]:
    return list(page.evaluate("(t) => window.__playground.events.filter(e => e.type === t)", type_))


def trace(page: Page, since: float = 0.0) -> list[tuple[float, float]]:
    return [(t, r) for t, r in page.evaluate("window.__voice.playback.trace") if t >= since]


def audible(samples: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(first, last) time the analyser heard more than silence."""
    loud = [t for t, r in samples if r >= SILENT_RMS]
    return (loud[0], loud[-1]) if loud else None


def wait_for_reply_audio(page: Page, since: float, timeout_ms: int = 30_000) -> None:
    page.wait_for_function(
        "([since, thr]) => window.__voice.playback.trace.some(([t, r]) => t >= since && r >= thr)",
        arg=[since, SPEAKING_RMS], timeout=timeout_ms, polling=20)


def now(page: Page) -> float:
    return float(page.evaluate("performance.now()"))


def restart_mic(page: Page) -> None:
    page.click("#mic-btn")  # off
    page.click("#mic-btn")  # on: the fake capture file starts over
    expect(page.locator("#voice")).to_have_attribute("data-state", "live")


def test_a_spoken_question_gets_a_spoken_answer_and_barge_in_stops_it(embedded: EmbeddedServer, mic_page: Page) -> None:
    page = mic_page
    start_session(page, embedded)
    transcript = page.locator("#transcript")

    # -- turn 1: ask by voice; the reply plays in full ------------------------------------
    asked = now(page)
    page.click("#mic-btn")
    expect(page.locator("#voice")).to_have_attribute("data-state", "live")
    expect(transcript.locator(".line.user").first).to_contain_text("what is the weather like in paris today", timeout=30_000)
    tool_row = page.locator("#tool-calls tbody tr").first
    expect(tool_row).to_contain_text("get_weather")
    expect(tool_row.locator(".args")).to_contain_text("Paris")
    expect(tool_row.locator(".result")).to_contain_text("The weather in Paris is", timeout=20_000)
    expect(transcript.locator(".line.agent").first).to_contain_text("The weather in Paris is", timeout=20_000)
    page.wait_for_function("window.__playground.events.some(e => e.type === 'agent_state_changed' && e.data.new_state === 'listening' && e.data.old_state === 'speaking')",
                           timeout=30_000)
    page.wait_for_timeout(300)  # the jitter buffer's last ~80 ms, and a margin of silence
    reply_ms = sum(e["data"]["duration_ms"] for e in events_of(page, "tts_audio") if e["data"].get("text"))
    heard = trace(page, since=asked)
    span = audible(heard)
    assert span is not None, "the page's playback analyser heard nothing"
    heard_ms = span[1] - span[0]
    assert reply_ms > 1000, reply_ms
    # the whole reply played: the audible span is the reply's audio duration (less the silence
    # espeak-ng puts around a sentence), never longer
    assert reply_ms - 600 < heard_ms <= reply_ms + 100, (heard_ms, reply_ms)
    during = [r for t, r in heard if span[0] <= t <= span[1]]
    assert float(np.sqrt(np.mean(np.square(during)))) > SPEAKING_RMS  # well above silence throughout
    assert sum(r >= SILENT_RMS for r in during) / len(during) > 0.7  # a voice, with short gaps between words
    assert page.evaluate("window.__voice.framesOut") > 100  # the mic streamed (20 ms frames)
    assert page.evaluate("window.__voice.capture.frames") >= page.evaluate("window.__voice.framesOut")

    # -- turn 2: ask again; barge in (the fake mic speaks again) while the reply plays -------
    before = now(page)
    restart_mic(page)
    wait_for_reply_audio(page, before)
    page.wait_for_timeout(150)  # well into the reply
    screenshot(page, "voice-playground-mid-reply")
    restart_mic(page)
    page.wait_for_function("window.__voice.playback.bargeIns.length > 0", timeout=20_000)
    barge = page.evaluate("window.__voice.playback.bargeIns[0]")
    assert barge["wasPlaying"], barge  # the agent was audible when it was interrupted
    assert barge["stopMs"] < 200, barge
    interrupted = events_of(page, "interrupted")
    assert interrupted and interrupted[0]["data"]["reason"] == "user_speech", interrupted
    # and it stays silent: nothing queued before the interruption plays afterwards
    page.wait_for_function("(t) => performance.now() > t", arg=barge["interruptedAt"] + 1050, polling=50)
    after = [r for t, r in trace(page, since=barge["interruptedAt"] + 200) if t <= barge["interruptedAt"] + 1000]
    assert len(after) > 50 and max(after) < SILENT_RMS, after
    expect(transcript.locator(".line.agent.interrupted")).to_have_count(1)
    print(f"reply {reply_ms:.0f} ms, heard {heard_ms:.0f} ms; barge-in stop {barge['stopMs']:.0f} ms", barge)


def test_a_typed_question_runs_the_tool_and_the_spoken_reply_plays(embedded: EmbeddedServer, browser_page: Page) -> None:
    """Must show 2, the browser half: a fresh embedded run, no provider variables, the text box."""
    page = browser_page
    start_session(page, embedded)
    asked = now(page)
    page.fill("#pg-text", "What's the weather in Paris?")
    page.press("#pg-text", "Enter")
    transcript = page.locator("#transcript")
    expect(transcript.locator(".line.user").first).to_contain_text("What's the weather in Paris?")
    tool_row = page.locator("#tool-calls tbody tr").first
    expect(tool_row.locator(".result")).to_contain_text("The weather in Paris is", timeout=20_000)
    expect(transcript.locator(".line.agent").first).to_contain_text("The weather in Paris is", timeout=20_000)
    wait_for_reply_audio(page, asked)
    page.wait_for_function("window.__playground.events.some(e => e.type === 'agent_state_changed' && e.data.old_state === 'speaking')",
                           timeout=30_000)
    page.wait_for_timeout(300)
    reply_ms = sum(e["data"]["duration_ms"] for e in events_of(page, "tts_audio") if e["data"].get("text"))
    span = audible(trace(page, since=asked))
    assert span is not None
    assert reply_ms - 600 < span[1] - span[0] <= reply_ms + 100, (span, reply_ms)
    assert page.evaluate("window.__voice.playback.peakRms") > 5 * SPEAKING_RMS
