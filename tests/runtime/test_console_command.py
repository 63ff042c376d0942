"""`manage.py console`: a real agent row, the real tool executor, the OpenAI double."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from agents import services as agent_services
from agents.tools.sync import tool_sync
from tests.doubles.fixtures import allow_double_egress
from tests.doubles.openai_server import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def weather_agent(openai_double, monkeypatch, settings):
    allow_double_egress(settings, "CONSOLE_TEST_KEY")
    monkeypatch.setenv("CONSOLE_TEST_KEY", "sk-test")
    tool_sync()
    openai_double.speech_ms_per_char = 5.0
    cfg = {"provider": "openai", "base_url": openai_double.base_url, "api_key_env": "CONSOLE_TEST_KEY",
           "timeout_s": 5, "max_retries": 0}
    return agent_services.agent_create(
        agent_id="weather", instructions="You tell the weather.", actor="test", tools=["get_weather"],
        llm_config={**cfg, "model": "gpt-4o-mini"}, stt_config={**cfg, "model": "whisper-1"},
        tts_config={**cfg, "voice": "alloy"}, vad_config={"provider": "webrtcvad", "min_silence_ms": 300},
        turn_config={"min_endpointing_delay_ms": 100, "max_endpointing_delay_ms": 1000})


def test_console_text_prints_transcript_tool_calls_and_latency(weather_agent, openai_double):
    openai_double.chat.push(Reply.tool("get_weather", {"city": "Paris"}), "Here is the forecast for Paris.")
    out = io.StringIO()
    call_command("console", "weather", "--text", "weather in Paris?", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "user: weather in Paris?"
    assert lines[1] == 'tool: get_weather({"city": "Paris"})'
    assert lines[2].startswith("tool: get_weather -> The weather in Paris is ")
    assert "agent: Here is the forecast for Paris." in lines
    assert any(line.startswith("latency: end-of-utterance") and "end-to-end" in line for line in lines)
    # the real tool ran and its output went back to the model
    second = openai_double.requests_to("/chat/completions")[1].body
    assert second["messages"][-1]["content"].startswith("The weather in Paris is ")


def test_console_json_prints_envelopes_with_gap_free_seq(weather_agent, openai_double):
    openai_double.chat.push("Hello!")
    out = io.StringIO()
    call_command("console", "weather", "--text", "hi", "--json", stdout=out)
    envelopes = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["seq"] for e in envelopes] == list(range(1, len(envelopes) + 1))
    assert all(set(e) == {"session_id", "seq", "type", "at", "data"} for e in envelopes)
    types = [e["type"] for e in envelopes]
    assert types[0] == "session_started" and types[-1] == "session_stopped"
    assert "response_generated" in types and "metrics_collected" in types
    assert envelopes[types.index("response_generated")]["data"]["text"] == "Hello!"
    assert envelopes[0]["at"].endswith("Z")


def test_console_wav_runs_a_spoken_turn_and_saves_audio(weather_agent, openai_double, speech, tmp_path):
    openai_double.transcripts.push("What's the weather in Oslo?")
    openai_double.chat.push("Cold, probably.")
    wav = speech.wav("What is the weather in Oslo?", rate=48000, channels=2)
    out = io.StringIO()
    saved = tmp_path / "agent.wav"
    call_command("console", "weather", "--wav", str(wav), "--save-audio", str(saved), stdout=out)
    text = out.getvalue()
    assert "user: What's the weather in Oslo?" in text
    assert "agent: Cold, probably." in text
    assert saved.stat().st_size > 44 + 1000


def test_console_unknown_agent_is_a_command_error(db):
    with pytest.raises(CommandError, match="no agent"):
        call_command("console", "nobody", "--text", "hi", stdout=io.StringIO())


def test_console_reads_lines_from_stdin_when_no_input_is_given(weather_agent, openai_double, monkeypatch):
    openai_double.chat.push("First reply.", "Second reply.")
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n\nhow are you?\n"))
    out = io.StringIO()
    call_command("console", "weather", stdout=out)
    lines = [line for line in out.getvalue().splitlines() if line.startswith(("user:", "agent:"))]
    assert lines == ["user: hello", "agent: First reply.", "user: how are you?", "agent: Second reply."]


def test_console_wav_needs_an_agent_with_stt(db, openai_double, monkeypatch, speech, settings):
    allow_double_egress(settings, "CONSOLE_TEST_KEY")
    monkeypatch.setenv("CONSOLE_TEST_KEY", "sk-test")
    agent_services.agent_create(agent_id="texty", instructions="Text only.", actor="test",
                                llm_config={"provider": "openai", "base_url": openai_double.base_url,
                                            "api_key_env": "CONSOLE_TEST_KEY"})
    with pytest.raises(CommandError, match="no STT provider"):
        call_command("console", "texty", "--wav", str(speech.wav("hello")), stdout=io.StringIO())


def test_console_wav_with_two_questions_makes_two_turns_at_real_time_pace(weather_agent, openai_double, speech,
                                                                           tmp_path):
    import numpy as np

    from runtime.audio import wav_bytes

    openai_double.transcripts.push("Hello there.", "Goodbye now.")
    openai_double.chat.push("Hi!", "Bye!")
    gap = np.zeros(int(16000 * 1.5), dtype=np.int16)
    audio = np.concatenate([speech.samples("Hello there."), gap, speech.samples("Goodbye now.")])
    wav = tmp_path / "two.wav"
    wav.write_bytes(wav_bytes(audio, 16000))
    out = io.StringIO()
    call_command("console", "weather", "--wav", str(wav), stdout=out)
    lines = [line for line in out.getvalue().splitlines() if line.startswith(("user:", "agent:"))]
    assert lines == ["user: Hello there.", "agent: Hi!", "user: Goodbye now.", "agent: Bye!"]
