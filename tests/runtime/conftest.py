"""Personas for the runtime tests: a voice session wired to the OpenAI double and the event
recorder (both shared from tests/conftest.py)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from runtime.provider_configs import TurnConfig, WebRTCVADConfig, parse_provider_config
from runtime import AgentSession, SessionOptions
from runtime.providers import build_llm, build_stt, build_tts
from runtime.transports import LocalTransport
from tests.doubles.openai_server import OpenAIDouble
from tests.runtime.helpers import Recorder, stop_open


# -- sessions ---------------------------------------------------------------------------
def provider_cfg(api: OpenAIDouble, **over: Any) -> dict[str, Any]:
    return {"provider": "openai", "base_url": api.base_url, "api_key_env": "TEST_OPENAI_KEY",
            "timeout_s": 5.0, "max_retries": 0, **over}


@pytest.fixture
async def make_session(openai_double: OpenAIDouble, recorder: Recorder,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., AgentSession]]:
    """Builds (not starts) a voice session against the double; stops it after the test."""
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    openai_double.speech_ms_per_char = 12.0
    made: list[AgentSession] = []

    def make(*, tools: Any = None, text_only: bool = False, llm: dict[str, Any] | None = None,
             stt: dict[str, Any] | None = None, tts: dict[str, Any] | None = None,
             turn: dict[str, Any] | None = None, vad: dict[str, Any] | None = None,
             transport: LocalTransport | None = None, **opts: Any) -> AgentSession:
        options = SessionOptions(
            instructions="You are a test agent.", session_id=f"s{len(made)}", agent_id="test-agent",
            vad=WebRTCVADConfig(**{"min_silence_ms": 300, **(vad or {})}),
            turn=TurnConfig(**{"min_endpointing_delay_ms": 100, "max_endpointing_delay_ms": 1000,
                               "min_interruption_duration_ms": 300, **(turn or {})}), **opts)
        s = AgentSession(
            options=options, llm=build_llm(parse_provider_config("llm", provider_cfg(openai_double, **(llm or {})))),
            stt=None if text_only else build_stt(parse_provider_config(
                "stt", provider_cfg(openai_double, model="whisper-1", **(stt or {})))),
            tts=None if text_only else build_tts(parse_provider_config(
                "tts", provider_cfg(openai_double, voice="alloy", **(tts or {})))),
            tools=tools, sink=recorder, transport=transport or LocalTransport(record_audio=True))
        made.append(s)
        return s

    yield make  # type: ignore[misc]
    await stop_open(made)
