"""sessions.launch: an agent config snapshot → a runtime session."""
from __future__ import annotations

import pytest

from sessions.launch import ConfigError, build_session, run_session
from runtime.providers.openai import OpenAILLM, OpenAISTT, OpenAITTS
from runtime.transports import LocalTransport
from runtime.vad import webrtc_mode

pytestmark = pytest.mark.asyncio


def snapshot(**over):
    return {"instructions": "Be brief.", "tools": [], "metadata": {"tier": "gold"},
            "llm_config": {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.2, "vision": True},
            "stt_config": {"provider": "openai", "model": "whisper-1", "language": "fr"},
            "tts_config": {"provider": "openai", "voice": "nova", "speed": 1.25},
            "vad_config": {"provider": "webrtcvad", "sensitivity": 0.9, "frame_ms": 30, "min_silence_ms": 250},
            "turn_config": {"min_endpointing_delay_ms": 300, "max_tool_steps": 2, "allow_interruptions": False},
            **over}


async def test_config_maps_onto_providers_and_options():
    s = build_session(snapshot(), transport=LocalTransport(), session_id="sess-1", agent_id="bot")
    assert isinstance(s.llm, OpenAILLM) and (s.llm.model, s.llm.temperature) == ("gpt-4o-mini", 0.2)
    assert isinstance(s.stt, OpenAISTT) and s.stt.language == "fr"
    assert isinstance(s.tts, OpenAITTS) and (s.tts.voice, s.tts.speed) == ("nova", 1.25)
    o = s.options
    assert (o.instructions, o.session_id, o.agent_id, o.vision) == ("Be brief.", "sess-1", "bot", True)
    assert (o.vad.frame_ms, o.vad.min_silence_ms, webrtc_mode(o.vad.sensitivity)) == (30, 250, 0)
    assert (o.turn.min_endpointing_delay_ms, o.turn.max_tool_steps, o.turn.allow_interruptions) == (300, 2, False)
    assert s.user_data["metadata"] == {"tier": "gold"}
    assert not s.text_only


async def test_no_stt_or_tts_makes_a_text_agent():
    s = build_session(snapshot(stt_config={}, tts_config={"provider": "none"}), transport=LocalTransport())
    assert s.stt is None and s.tts is None and s.text_only


@pytest.mark.parametrize("over,field", [
    ({"llm_config": {"provider": "anthropic"}}, "provider"),
    ({"tts_config": {"provider": "openai", "speed": 9}}, "speed"),
    ({"turn_config": {"min_endpointing_delay_ms": 900, "max_endpointing_delay_ms": 100}}, "max_endpointing"),
])
async def test_configs_the_pipeline_cannot_run_raise_config_error(over, field):
    with pytest.raises(ConfigError, match=field):
        build_session(snapshot(**over), transport=LocalTransport())


async def test_sdk_environment_applies_when_the_config_names_no_base_url_or_key(openai_env):
    openai_env.chat.push("From the environment.")
    from tests.runtime.helpers import Recorder

    rec = Recorder()
    cfg = snapshot(stt_config={}, tts_config={}, llm_config={"provider": "openai", "max_retries": 0})
    session = build_session(cfg, transport=LocalTransport(), sink=rec)
    import asyncio

    runner = asyncio.create_task(run_session(session))
    await rec.wait_for("session_started")
    await asyncio.sleep(0)
    session.push_text("hi")
    done = await rec.wait_for("response_generated")
    assert done.text == "From the environment."
    assert openai_env.requests_to("/chat/completions")[0].body["model"] == "gpt-4o-mini"
    session.end("done")
    assert await asyncio.wait_for(runner, 5) == "done"


async def test_noise_suppression_from_the_vad_config_runs_the_apm_before_vad(make_session, recorder, speech, openai_double):
    opts = build_session(snapshot(vad_config={"provider": "webrtcvad", "noise_suppression": True,
                                              "echo_cancellation": True}), transport=LocalTransport()).options
    assert opts.vad.noise_suppression and opts.vad.echo_cancellation
    openai_double.transcripts.push("Can you hear me?")
    transport = LocalTransport()
    session = make_session(transport=transport, vad={"noise_suppression": True, "echo_cancellation": True})
    await session.start()
    assert session._apm is not None
    await transport.play(speech.samples("Can you hear me through the filter?"), 16000, realtime=False,
                         tail_silence_ms=600)
    assert (await recorder.wait_for("stt_result")).text == "Can you hear me?"
