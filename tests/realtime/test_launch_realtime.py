"""sessions.launch builds a RealtimeSession for an `openai_realtime` agent."""
from __future__ import annotations

from sessions.launch import build_session
from runtime.realtime import RealtimeSession
from runtime.transports import LocalTransport


def snapshot(**over):
    return {"instructions": "Agent instructions.", "tools": [], "metadata": {"tier": "gold"},
            "llm_config": {"provider": "openai_realtime", "model": "gpt-realtime-mini", "voice": "cedar",
                           "turn_detection": "local", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "RT_KEY"},
            "vad_config": {"provider": "webrtcvad", "min_silence_ms": 250},
            "turn_config": {"min_endpointing_delay_ms": 300, "max_tool_steps": 2, "allow_interruptions": False},
            **over}


async def test_an_openai_realtime_llm_builds_a_realtime_session():
    s = build_session(snapshot(), transport=LocalTransport(), session_id="s1", agent_id="a1")
    assert isinstance(s, RealtimeSession)
    assert (s.id, s.options.agent_id, s.options.instructions) == ("s1", "a1", "Agent instructions.")
    assert (s.model.model, s.model.voice, s.model.base_url) == ("gpt-realtime-mini", "cedar", "http://127.0.0.1:9/v1")
    assert s.options.turn_detection == "local" and not s.server_vad
    assert (s.options.vad.min_silence_ms, s.options.turn.max_tool_steps) == (250, 2)
    assert s.options.turn.allow_interruptions is False
    assert s.user_data["metadata"] == {"tier": "gold"}
    cfg = s.session_config()
    assert cfg["audio"]["input"]["turn_detection"] is None and cfg["audio"]["output"]["voice"] == "cedar"


async def test_the_realtime_config_instructions_override_the_agents():
    cfg = snapshot()
    cfg["llm_config"]["instructions"] = "Speak briefly."
    s = build_session(cfg, transport=LocalTransport())
    assert s.options.instructions == "Speak briefly."


async def test_server_vad_settings_follow_the_agents_vad_and_turn_config():
    cfg = snapshot()
    cfg["llm_config"]["turn_detection"] = "server_vad"
    s = build_session(cfg, transport=LocalTransport())
    td = s.session_config()["audio"]["input"]["turn_detection"]
    assert td == {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 200, "silence_duration_ms": 550,
                  "create_response": True, "interrupt_response": False}
