"""Personas for the runtime tests: real speech (espeak-ng + sox), the OpenAI double, an
event recorder, a tiny tool executor, and a session wired to all of them."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.provider_configs import TurnConfig, WebRTCVADConfig, parse_provider_config
from agents.tools.calls import ToolCall, ToolInvocation, ToolResult
from sessions.runtime import AgentSession, SessionOptions
from sessions.runtime.audio import read_wav
from sessions.runtime.providers import build_llm, build_stt, build_tts
from sessions.runtime.transports import LocalTransport
from tests.doubles.fixtures import openai_double, openai_env  # noqa: F401
from tests.doubles.openai_server import OpenAIDouble


# -- real speech ------------------------------------------------------------------------
class SpeechMaker:
    """WAVs of real synthetic speech, made once per test session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[tuple[str, int, int], Path] = {}
        if not shutil.which("espeak-ng") or not shutil.which("sox"):
            raise RuntimeError("the runtime tests need espeak-ng and sox (apt-get install espeak-ng sox)")

    def wav(self, text: str, *, rate: int = 16000, channels: int = 1) -> Path:
        key = (text, rate, channels)
        if key not in self._cache:
            raw = self.root / f"raw_{len(self._cache)}.wav"
            out = self.root / f"speech_{len(self._cache)}_{rate}_{channels}.wav"
            subprocess.run(["espeak-ng", "-s", "160", "-w", str(raw), text], check=True, capture_output=True)
            subprocess.run(["sox", str(raw), "-b", "16", "-e", "signed-integer", "-r", str(rate),
                            "-c", str(channels), str(out)], check=True, capture_output=True)
            self._cache[key] = out
        return self._cache[key]

    def samples(self, text: str, *, rate: int = 16000, channels: int = 1) -> np.ndarray:
        samples, r, c = read_wav(str(self.wav(text, rate=rate, channels=channels)))
        assert (r, c) == (rate, channels)
        return samples


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> SpeechMaker:
    return SpeechMaker(tmp_path_factory.mktemp("speech"))


# -- events -----------------------------------------------------------------------------
class Recorder:
    """An EventSink that keeps every event with a monotonic timestamp."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.times: list[float] = []

    def emit(self, event: Any) -> None:
        self.events.append(event)
        self.times.append(time.monotonic())

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def of(self, type_: str) -> list[Any]:
        return [e for e in self.events if e.type == type_]

    def first(self, type_: str) -> Any:
        found = self.of(type_)
        assert found, f"no {type_} event among {self.types()}"
        return found[0]

    def time_of(self, type_: str) -> float:
        for e, t in zip(self.events, self.times):
            if e.type == type_:
                return t
        raise AssertionError(f"no {type_} event among {self.types()}")

    async def wait_for(self, type_: str, timeout: float = 10.0, count: int = 1) -> Any:
        deadline = time.monotonic() + timeout
        while len(self.of(type_)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {type_}; got {self.types()}")
            await asyncio.sleep(0.01)
        return self.of(type_)[count - 1]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


# -- tools ------------------------------------------------------------------------------
class DictToolExecutor:
    """A ToolExecutor over plain functions: name → fn(**arguments) (sync or async)."""

    def __init__(self, funcs: dict[str, Callable[..., Any]]) -> None:
        self.funcs = funcs
        self.calls: list[tuple[ToolCall, ToolInvocation]] = []

    def schemas(self) -> list[dict[str, Any]]:
        return [{"type": "function", "function": {"name": n, "description": f"{n} (test tool)",
                                                  "parameters": {"type": "object", "properties": {}}}}
                for n in self.funcs]

    async def execute(self, call: ToolCall, invocation: ToolInvocation) -> ToolResult:
        self.calls.append((call, invocation))
        start = time.perf_counter()
        fn = self.funcs.get(call.name)
        if fn is None:
            return ToolResult(call.call_id, call.name, f"unknown tool {call.name}", True, "unknown_tool")
        try:
            out = fn(**json.loads(call.arguments or "{}"))
            if asyncio.iscoroutine(out):
                out = await out
        except Exception as exc:  # noqa: BLE001
            return ToolResult(call.call_id, call.name, str(exc), True, "exception",
                              (time.perf_counter() - start) * 1000)
        return ToolResult(call.call_id, call.name, out if isinstance(out, str) else json.dumps(out),
                          duration_ms=(time.perf_counter() - start) * 1000)


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
    for s in made:
        if s._closed is not None and not s.closed:
            await s.stop("test_teardown")
