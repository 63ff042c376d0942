"""The voice playground's browser side for the voice tests: a fake-microphone Chromium, and
the talk-then-barge-in conversation measured in the page.

Chromium's fake capture plays an espeak-ng WAV of a question (then silence) and starts the
file over each time the page opens the microphone. So the conversation asks by switching the
mic on, and barges in by switching it on again while the agent speaks: the same fake-mic
speech, at a moment chosen from what the page hears rather than from a guessed timeline.

Everything asserted is measured in the page: the playback AnalyserNode's RMS every 10 ms
(`window.__voice.playback.trace`) and, per barge-in, the time from the `interrupted` event
arriving to that analyser going silent (`window.__voice.playback.bargeIns`).
"""
from __future__ import annotations

import subprocess
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import Page, expect, sync_playwright

from tests.dashboard.live_server import CHROMIUM, CHROMIUM_ARGS, log_in, screenshot

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


def start_session(page: Page, url: str, username: str, password: str) -> str:
    log_in(page, url, username, password, next_path="/playground/")
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


@contextmanager
def fake_mic_page(wav: Path) -> Iterator[Page]:
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def assert_reply_played_in_full(page: Page, since: float) -> dict[str, float]:
    """The reply's audio played, all of it: from the first sound to the last the analyser heard
    at least the reply's audio duration (less the silence espeak-ng puts around a sentence),
    and it heard a voice (not silence) for most of that audio. Late frames on a busy machine
    stretch playback with gaps (the jitter buffer refills) but lose nothing, so the time heard
    as voice is what is compared with the reply, not the share of the stretched span."""
    reply_ms = sum(e["data"]["duration_ms"] for e in events_of(page, "tts_audio") if e["data"].get("text"))
    heard = trace(page, since=since)
    span = audible(heard)
    assert span is not None, "the page's playback analyser heard nothing"
    heard_ms = span[1] - span[0]
    assert reply_ms > 1000, reply_ms
    assert reply_ms - 600 < heard_ms < 2 * reply_ms, (heard_ms, reply_ms)
    inside = [(t, r) for t, r in heard if span[0] <= t <= span[1]]
    voiced_ms = sum(t1 - t0 for (t0, r), (t1, _) in zip(inside, inside[1:]) if r >= SILENT_RMS)
    loud = [r for _, r in inside if r >= SILENT_RMS]
    level = float(np.sqrt(np.mean(np.square(loud))))
    assert voiced_ms > 0.6 * reply_ms, (voiced_ms, reply_ms, page.evaluate(
        "({framesIn: window.__voice.framesIn, dry: window.__voice.playback.runsDry, target: window.__voice.playback.targetMs})"),
        [(round(t - span[0]), r) for t, r in inside][::5])
    assert level > SPEAKING_RMS, level  # well above silence: a voice at speaking level
    return {"reply_ms": reply_ms, "heard_ms": heard_ms, "voiced_ms": round(voiced_ms), "rms": round(level, 4)}


def wait_until_spoken(page: Page) -> None:
    page.wait_for_function("window.__playground.events.some(e => e.type === 'agent_state_changed' && e.data.old_state === 'speaking')",
                           timeout=30_000)
    page.wait_for_timeout(300)  # the jitter buffer's last ~80 ms, and a margin of silence


def ask_and_hear_the_reply(page: Page) -> dict[str, float]:
    """Ask by voice: the page shows the transcribed turn, the tool call and the reply, and
    plays the whole reply."""
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
    wait_until_spoken(page)
    played = assert_reply_played_in_full(page, since=asked)
    captured, sent = page.evaluate("[window.__voice.capture.frames, window.__voice.framesOut]")
    assert sent > 100 and captured >= sent  # the mic streamed its 20 ms frames over the socket
    return played


def converse_and_barge_in(page: Page, screenshot_name: str) -> dict[str, Any]:
    """Ask by voice, hear the whole reply; ask again and barge in during the reply."""
    played = ask_and_hear_the_reply(page)
    transcript = page.locator("#transcript")

    # -- turn 2: ask again; barge in (the fake mic speaks again) while the reply plays -------
    before = now(page)
    restart_mic(page)
    wait_for_reply_audio(page, before)
    page.wait_for_timeout(150)  # well into the reply
    screenshot(page, screenshot_name)
    restart_mic(page)
    try:
        page.wait_for_function("window.__voice.playback.bargeIns.length > 0", timeout=20_000)
    except Exception:
        raise AssertionError(page.evaluate("""({pending: window.__voice.playback.pending,
            events: window.__playground.events.filter(e => ['interrupted', 'vad_speech_start', 'vad_speech_end', 'stt_result',
                'agent_state_changed', 'error'].includes(e.type)).map(e => [e.at.slice(11, 23), e.type, JSON.stringify(e.data).slice(0, 80)])})""")) from None
    barge = page.evaluate("window.__voice.playback.bargeIns[0]")
    assert barge["wasPlaying"], barge  # the agent was audible when it was interrupted
    assert barge["stopMs"] < 200, barge
    interrupted = events_of(page, "interrupted")
    assert interrupted and interrupted[0]["data"]["reason"] == "user_speech", interrupted
    # and it stays silent: nothing queued before the interruption plays afterwards
    page.wait_for_function("(t) => performance.now() > t", arg=barge["interruptedAt"] + 1050, polling=50)
    after = [r for t, r in trace(page, since=barge["interruptedAt"] + 200) if t <= barge["interruptedAt"] + 1000]
    assert len(after) > 20 and max(after) < SILENT_RMS, after  # (10 ms polls; fewer on a busy machine)
    expect(transcript.locator(".line.agent.interrupted")).to_have_count(1)
    return {**played, "stop_ms": barge["stopMs"], "runs_dry": page.evaluate("window.__voice.playback.runsDry || 0"),
            "target_ms": page.evaluate("window.__voice.playback.targetMs")}

