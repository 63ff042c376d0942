"""Issue 12, finding 1: an agent config can name a secret, never send one where it may not go.

Each test stores an agent config (bypassing save-time validation where the point is the
send-time check: a config saved before the check existed, or a credential whose hosts
changed since), resolves its endpoints the way the worker does (`agent_endpoints`, then
`build_session(..., endpoints=...)`) and runs a turn against the OpenAI double on loopback,
which records the headers of every request that reaches it.
"""
from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from agents import services as agent_services
from agents.credentials import agent_endpoints
from agents.models import Agent, Credential
from runtime.provider_configs import parse_provider_config
from sessions.launch import build_session
from runtime.providers import ProviderError, build_stt
from runtime.realtime import RealtimeModel
from runtime.transports import LocalTransport
from tests.doubles.fixtures import allow_double_egress
from tests.doubles.openai_realtime_server import RealtimeDouble
from tests.doubles.openai_server import OpenAIDouble
from tests.runtime.helpers import Recorder

pytestmark = pytest.mark.django_db

SERVER_SECRET_KEY = "django-secret-key-of-the-server-0123456789"
LIVEKIT_SECRET = "livekit-api-secret-of-the-server-0123456789"
DEFAULT_OPENAI_KEY = "sk-server-default-openai-key"
VENDOR_KEY = "sk-vendor-credential-value"


@pytest.fixture
def server_secrets(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """The environment of a production worker: its own secrets, and the double allowed as a
    provider host (so the address guard is not what stops the key)."""
    allow_double_egress(settings)
    monkeypatch.setenv("SECRET_KEY", SERVER_SECRET_KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", LIVEKIT_SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", DEFAULT_OPENAI_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def vendor_credential(*hosts: str) -> Credential:
    row = Credential(name="vendor-key", allowed_hosts=list(hosts))
    row.set_value(VENDOR_KEY)
    row.save()
    return row


def stored_agent(**configs: Any) -> Agent:
    """An agent row holding these provider configs as stored, whatever validation says now."""
    agent = agent_services.agent_create(agent_id="leaky", instructions="Answer briefly.", actor="test")
    Agent.objects.filter(pk=agent.pk).update(**configs)
    return Agent.objects.get(pk=agent.pk)


def run_text_turn(agent: Agent, *, wait_for: str) -> Recorder:
    config = agent.config_snapshot()
    endpoints = agent_endpoints(config)

    async def main() -> Recorder:
        rec = Recorder()
        session = build_session(config, transport=LocalTransport(), sink=rec, endpoints=endpoints)
        await session.start()
        try:
            session.push_text("hello")
            await rec.wait_for(wait_for, timeout=10)
        finally:
            await session.stop("test_done")
        return rec

    return asyncio.run(main())


def leaked(double: OpenAIDouble, *values: str) -> list[str]:
    return [f"{path}: {name}" for path, headers in double.arrivals for name, v in headers.items()
            if any(secret in v for secret in values)]


@pytest.mark.parametrize("env_name", ["SECRET_KEY", "LIVEKIT_API_SECRET"])
def test_an_llm_config_naming_a_server_secret_sends_nothing_and_reports_an_error(
    server_secrets: None, openai_double: OpenAIDouble, env_name: str
) -> None:
    agent = stored_agent(llm_config={"provider": "openai", "base_url": openai_double.base_url,
                                     "api_key_env": env_name, "max_retries": 0})
    rec = run_text_turn(agent, wait_for="error")
    err = rec.first("error")
    assert (err.source, err.error_kind) == ("llm", "config")
    assert env_name in err.message and "CREDENTIAL_ENV_ALLOWLIST" in err.message
    assert SERVER_SECRET_KEY not in err.message and LIVEKIT_SECRET not in err.message
    assert openai_double.arrivals == []  # not a single request left the process


def test_the_default_openai_key_does_not_follow_a_foreign_base_url(
    server_secrets: None, openai_double: OpenAIDouble
) -> None:
    openai_double.chat.push("Answered without our key.")
    agent = stored_agent(llm_config={"provider": "openai", "base_url": openai_double.base_url, "max_retries": 0})
    rec = run_text_turn(agent, wait_for="response_generated")
    assert rec.first("response_generated").text == "Answered without our key."
    [(path, headers)] = openai_double.arrivals
    assert path == "/v1/chat/completions"
    assert DEFAULT_OPENAI_KEY not in headers.get("authorization", "")
    assert leaked(openai_double, DEFAULT_OPENAI_KEY, SERVER_SECRET_KEY) == []


def test_an_ambient_sdk_authorization_header_does_not_follow_a_foreign_base_url(
    server_secrets: None, openai_double: OpenAIDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the SDK adds OPENAI_CUSTOM_HEADERS to every request, wherever it goes
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", f"Authorization: Bearer {DEFAULT_OPENAI_KEY}")
    openai_double.chat.push("Answered without our key.")
    agent = stored_agent(llm_config={"provider": "openai", "base_url": openai_double.base_url, "max_retries": 0})
    run_text_turn(agent, wait_for="response_generated")
    assert len(openai_double.arrivals) == 1
    assert leaked(openai_double, DEFAULT_OPENAI_KEY) == []


def test_naming_openai_api_key_for_a_foreign_base_url_is_refused(
    server_secrets: None, openai_double: OpenAIDouble
) -> None:
    agent = stored_agent(llm_config={"provider": "openai", "base_url": openai_double.base_url,
                                     "api_key_env": "OPENAI_API_KEY", "max_retries": 0})
    err = run_text_turn(agent, wait_for="error").first("error")
    assert "OPENAI_API_KEY may not be sent to 127.0.0.1" in err.message
    assert openai_double.arrivals == []


def test_the_default_openai_key_goes_to_the_operators_openai_base_url(
    server_secrets: None, openai_double: OpenAIDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", openai_double.base_url)
    openai_double.chat.push("Hello.")
    agent = stored_agent(llm_config={"provider": "openai", "max_retries": 0})
    run_text_turn(agent, wait_for="response_generated")
    [(_, headers)] = openai_double.arrivals
    assert headers["authorization"] == f"Bearer {DEFAULT_OPENAI_KEY}"


def test_a_credential_goes_only_to_its_allowed_hosts(server_secrets: None, openai_double: OpenAIDouble) -> None:
    vendor_credential("api.vendor.example")
    agent = stored_agent(llm_config={"provider": "openai", "base_url": openai_double.base_url,
                                     "api_key_credential": "vendor-key", "max_retries": 0})
    err = run_text_turn(agent, wait_for="error").first("error")
    assert (err.source, err.error_kind) == ("llm", "config")
    assert "credential 'vendor-key' may not be sent to 127.0.0.1" in err.message
    assert "api.vendor.example" in err.message and VENDOR_KEY not in err.message
    assert openai_double.arrivals == []


def test_a_credential_bound_to_the_host_is_sent_there(server_secrets: None, openai_double: OpenAIDouble) -> None:
    vendor_credential("127.0.0.1")
    openai_double.chat.push("Keyed.")
    agent = stored_agent(llm_config={"provider": "openai", "base_url": openai_double.base_url,
                                     "api_key_credential": "vendor-key", "max_retries": 0})
    run_text_turn(agent, wait_for="response_generated")
    [(_, headers)] = openai_double.arrivals
    assert headers["authorization"] == f"Bearer {VENDOR_KEY}"


def test_a_loopback_base_url_is_refused_unless_the_operator_allows_it(
    server_secrets: None, openai_double: OpenAIDouble, settings: Any
) -> None:
    settings.PROVIDER_ALLOWED_HOSTS = []
    agent = stored_agent(llm_config={"provider": "openai", "base_url": openai_double.base_url, "max_retries": 0})
    err = run_text_turn(agent, wait_for="error").first("error")
    assert "base_url host 127.0.0.1 is refused" in err.message and "PROVIDER_ALLOWED_HOSTS" in err.message
    assert openai_double.arrivals == []


def test_a_tts_config_with_a_foreign_credential_reports_a_tts_error_and_sends_no_key(
    server_secrets: None, openai_double: OpenAIDouble
) -> None:
    vendor_credential("api.vendor.example")
    openai_double.chat.push("Spoken answer.")
    agent = stored_agent(
        llm_config={"provider": "openai", "base_url": openai_double.base_url, "max_retries": 0},
        tts_config={"provider": "openai", "base_url": openai_double.base_url, "api_key_credential": "vendor-key",
                    "max_retries": 0})
    err = run_text_turn(agent, wait_for="error").first("error")
    assert (err.source, err.error_kind) == ("tts", "config") and "vendor-key" in err.message
    assert [path for path, _ in openai_double.arrivals] == ["/v1/chat/completions"]  # no /audio/speech
    assert leaked(openai_double, VENDOR_KEY, DEFAULT_OPENAI_KEY) == []


def test_an_stt_config_naming_a_server_secret_transcribes_nothing(
    server_secrets: None, openai_double: OpenAIDouble
) -> None:
    agent = stored_agent(stt_config={"provider": "openai", "base_url": openai_double.base_url,
                                     "api_key_env": "SECRET_KEY", "max_retries": 0})
    endpoints = agent_endpoints(agent.config_snapshot())
    stt = build_stt(parse_provider_config("stt", agent.stt_config), endpoints["stt"])

    async def transcribe() -> None:
        await stt.transcribe(np.zeros(16_000, dtype=np.int16), 16_000)

    with pytest.raises(ProviderError, match="SECRET_KEY is not on CREDENTIAL_ENV_ALLOWLIST") as caught:
        asyncio.run(transcribe())
    assert caught.value.kind == "config"
    assert openai_double.arrivals == []


def test_a_realtime_config_naming_a_server_secret_never_connects(server_secrets: None) -> None:
    with RealtimeDouble() as realtime_api:
        agent = stored_agent(llm_config={"provider": "openai_realtime", "base_url": realtime_api.base_url,
                                         "api_key_env": "LIVEKIT_API_SECRET"})
        endpoints = agent_endpoints(agent.config_snapshot())
        model = RealtimeModel.from_config(parse_provider_config("llm", agent.llm_config), endpoints["llm"])
        with pytest.raises(ProviderError, match="LIVEKIT_API_SECRET is not on CREDENTIAL_ENV_ALLOWLIST"):
            asyncio.run(model.connect())
        assert realtime_api.connections == []


def test_a_realtime_config_with_the_default_key_connects_without_it(server_secrets: None) -> None:
    with RealtimeDouble() as realtime_api:
        agent = stored_agent(llm_config={"provider": "openai_realtime", "base_url": realtime_api.base_url})
        model = RealtimeModel.from_config(parse_provider_config("llm", agent.llm_config),
                                          agent_endpoints(agent.config_snapshot())["llm"])

        async def connect_and_close() -> None:
            link = await model.connect()
            await link.conn.close()

        asyncio.run(connect_and_close())
        [connection] = realtime_api.connections
        assert DEFAULT_OPENAI_KEY not in connection["headers"].get("authorization", "")
