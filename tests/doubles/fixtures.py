"""pytest fixtures for the test doubles, a plugin of the whole suite (`pytest_plugins` in
tests/conftest.py): any test may ask for openai_double, openai_env, livekit_double or
agent_on_double."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agents import services as agent_services
from agents.models import Agent
from agents.tools.sync import tool_sync
from tests.doubles.livekit_netns import LiveKitDoubleProcess, NetnsUnavailable, NetworkNamespace
from tests.doubles.openai_server import OpenAIDouble


@pytest.fixture
def openai_double() -> Iterator[OpenAIDouble]:
    """A fresh OpenAI API double on 127.0.0.1:<ephemeral port>, stopped after the test."""
    with OpenAIDouble() as api:
        yield api


@pytest.fixture
def openai_env(openai_double: OpenAIDouble, monkeypatch: pytest.MonkeyPatch) -> OpenAIDouble:
    """The double, with OPENAI_BASE_URL / OPENAI_API_KEY pointing the SDK at it."""
    monkeypatch.setenv("OPENAI_BASE_URL", openai_double.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-double")
    return openai_double


# An operator who runs a model server on loopback must allow it explicitly: its host on
# PROVIDER_ALLOWED_HOSTS (the address guard refuses loopback) and the variables holding its
# keys on CREDENTIAL_ENV_ALLOWLIST. Tests driving the doubles set the same, by name.
DOUBLE_HOSTS = ["127.0.0.1"]


def allow_double_egress(settings: Any, *key_env: str) -> None:
    """For tests in this process: the double's host and the named key variables."""
    settings.PROVIDER_ALLOWED_HOSTS = DOUBLE_HOSTS
    settings.CREDENTIAL_ENV_ALLOWLIST = ["OPENAI_API_KEY", *key_env]


def double_egress_env(*key_env: str) -> dict[str, str]:
    """The same for a subprocess (a celery worker, the embedded server)."""
    return {"PROVIDER_ALLOWED_HOSTS": ",".join(DOUBLE_HOSTS),
            "CREDENTIAL_ENV_ALLOWLIST": ",".join(["OPENAI_API_KEY", *key_env])}


@pytest.fixture
def agent_on_double(openai_double: OpenAIDouble, settings: Any) -> Callable[..., Agent]:
    """An active voice agent whose LLM, STT and TTS are the OpenAI double, its key read from
    `key_env` (allowed explicitly: the double is on loopback); its `tools` are synced first."""

    def make(agent_id: str, *, key_env: str, instructions: str, tools: Sequence[str] = (), **config: Any) -> Agent:
        allow_double_egress(settings, key_env)
        if tools:
            tool_sync()
            config["tools"] = list(tools)
        provider = {"provider": "openai", "base_url": openai_double.base_url, "api_key_env": key_env}
        agent = agent_services.agent_create(
            agent_id=agent_id, instructions=instructions, actor="test",
            llm_config={**provider, "model": "gpt-4o-mini", "timeout_s": 5, "max_retries": 0},
            stt_config={**provider, "model": "whisper-1"}, tts_config={**provider, "voice": "alloy"}, **config)
        return agent_services.agent_activate(agent=agent)

    return make


LIVEKIT_API_KEY = "APIdouble"
LIVEKIT_API_SECRET = "livekit-double-secret-long-enough-for-hs256"


@pytest.fixture
def livekit_double(tmp_path: Path) -> Iterator[LiveKitDoubleProcess]:
    """The LiveKit server double in its own network namespace and process (WebRTC needs a
    non-loopback path). Fails the test, never skips it, where namespaces cannot be made."""
    try:
        netns = NetworkNamespace().create()
    except NetnsUnavailable as exc:
        pytest.fail(f"the LiveKit double needs a network namespace: {exc}")
    double = LiveKitDoubleProcess(netns, api_key=LIVEKIT_API_KEY, api_secret=LIVEKIT_API_SECRET,
                                  log_path=tmp_path / "livekit-double.log")
    try:
        double.start()
    except NetnsUnavailable as exc:
        netns.remove()
        pytest.fail(str(exc))
    try:
        yield double
    finally:
        double.stop()
        netns.remove()
