"""Personas for the realtime tests: the Realtime protocol double, and realtime sessions wired
to it and to the suite's event recorder."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from runtime.provider_configs import TurnConfig, WebRTCVADConfig
from runtime.realtime import RealtimeModel, RealtimeOptions, RealtimeSession
from runtime.transports import LocalTransport
from tests.doubles.openai_realtime_server import RealtimeDouble
from tests.runtime.helpers import Recorder, stop_open


@pytest.fixture
def realtime_api() -> Iterator[RealtimeDouble]:
    """A fresh Realtime API double on 127.0.0.1:<ephemeral port>."""
    with RealtimeDouble() as api:
        yield api


@pytest.fixture
async def make_rt_session(realtime_api: RealtimeDouble, recorder: Recorder,
                          monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., RealtimeSession]]:
    """Builds (not starts) a realtime session against the double; stops it after the test."""
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test-realtime")
    made: list[RealtimeSession] = []

    def make(*, tools: Any = None, turn_detection: str = "server_vad", turn: dict[str, Any] | None = None,
             vad: dict[str, Any] | None = None, transport: LocalTransport | None = None,
             **opts: Any) -> RealtimeSession:
        options = RealtimeOptions(
            instructions="You are a realtime test agent.", session_id=f"rt{len(made)}", agent_id="rt-agent",
            turn_detection=turn_detection,  # type: ignore[arg-type]
            vad=WebRTCVADConfig(**{"min_silence_ms": 300, **(vad or {})}),
            turn=TurnConfig(**{"min_endpointing_delay_ms": 100, "max_endpointing_delay_ms": 1000,
                               "min_interruption_duration_ms": 200, **(turn or {})}), **opts)
        model = RealtimeModel(model="gpt-realtime", voice="marin", base_url=realtime_api.base_url,
                              api_key_env="TEST_OPENAI_KEY", timeout_s=5.0)
        s = RealtimeSession(options=options, model=model, tools=tools, sink=recorder,
                            transport=transport or LocalTransport(record_audio=True))
        made.append(s)
        return s

    yield make  # type: ignore[misc]
    await stop_open(made)
