"""`manage.py console demo` with no provider environment: the local demo agent answers the
weather question through the real get_weather tool, by text and by voice."""
from __future__ import annotations

import io
import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from runtime.audio import level_dbfs

pytestmark = pytest.mark.django_db


@pytest.fixture
def local_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DEMO_PROVIDERS"):
        monkeypatch.delenv(name, raising=False)
    call_command("load_demo", stdout=io.StringIO())


def test_console_text_prints_the_weather_turn(local_demo: None, tmp_path: Path) -> None:
    out = io.StringIO()
    audio = tmp_path / "reply.wav"
    call_command("console", "demo", "--text", "what's the weather in Paris", "--save-audio", str(audio), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "user: what's the weather in Paris"
    assert lines[1] == 'tool: get_weather({"city": "Paris"})'
    assert lines[2].startswith("tool: get_weather -> The weather in Paris is ")
    result = lines[2].removeprefix("tool: get_weather -> ").rsplit(" (", 1)[0]
    assert f"agent: {result}" in lines  # the scripted reply is the tool's result
    assert not [line for line in lines if line.startswith("error")]
    with wave.open(str(audio)) as w:  # and it was spoken: espeak-ng audio at the session's rate
        assert (w.getsampwidth(), w.getframerate(), w.getnchannels()) == (2, 24_000, 1)
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert samples.size > 24_000 and level_dbfs(samples) > -35


def test_console_json_marks_the_reply_scripted(local_demo: None) -> None:
    out = io.StringIO()
    call_command("console", "demo", "--text", "Hello", "--json", stdout=out)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    replies = [e["data"] for e in events if e["type"] == "response_generated"]
    assert replies == [{"speech_id": replies[0]["speech_id"], "text": "Hello! Ask me about the weather in any city.",
                        "interrupted": False, "tool_steps": 0, "model": "scripted", "scripted": True}]
    assert any(e["type"] == "tts_audio" for e in events)


def test_console_wav_hears_the_spoken_question(local_demo: None, tmp_path: Path) -> None:
    wav = tmp_path / "question.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(wav),
                    "What is the weather like in Paris today?"], check=True)
    out = io.StringIO()
    call_command("console", "demo", "--wav", str(wav), "--fast", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "user: what is the weather like in paris today"
    assert lines[1] == 'tool: get_weather({"city": "Paris"})'
    assert any(line.startswith("agent: The weather in Paris is ") for line in lines)
