"""Issue 12, finding 1 as reported: an agent whose llm_config is
`{"base_url": <a host of the writer's choosing>, "api_key_env": "SECRET_KEY"}` (or naming
LIVEKIT_API_SECRET, or no key so the default OPENAI_API_KEY applies) is dispatched and runs
on this process acting as a worker (the default entry point, the Django event sink). The
host is the OpenAI double on loopback, recording every request's headers; the operator has
allowed it as a provider host, so the address guard is not what stops the key."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agents import services as agent_services
from agents.models import Agent, AgentVersion
from sessions.control import send_session_command
from sessions.models import AgentSession, SessionStatus
from tests.doubles.fixtures import allow_double_egress
from tests.doubles.openai_server import OpenAIDouble
from tests.helpers import wait_for
from tests.workers.helpers import InThread
from workers.dispatch import job_dispatch
from workers.models import Job
from workers.session_runner import run_job

pytestmark = pytest.mark.django_db(transaction=True)

SERVER_SECRETS = {"SECRET_KEY": "django-secret-key-of-the-server-0123456789",
                  "LIVEKIT_API_SECRET": "livekit-api-secret-of-the-server-0123456789",
                  "OPENAI_API_KEY": "sk-server-default-openai-key"}


@pytest.fixture
def text_node(as_node: Callable[..., Any], settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """This test process as worker `egress@test` with a production worker's secrets."""
    allow_double_egress(settings)
    for name, value in SERVER_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return as_node("egress@test", entry_point="sessions.entrypoints:agent_session", worker_type="text_agent", online=True)


def agent_with(llm_config: dict[str, Any]) -> Agent:
    agent = agent_services.agent_create(agent_id="leaky", instructions="Answer briefly.", actor="test",
                                        llm_config={"provider": "openai"})
    agent = agent_services.agent_activate(agent=agent)
    # stored as an older release accepted it: the send-time check is what is under test
    Agent.objects.filter(pk=agent.pk).update(llm_config=llm_config)
    for version in AgentVersion.objects.filter(agent=agent):
        AgentVersion.objects.filter(pk=version.pk).update(config={**version.config, "llm_config": llm_config})
    return Agent.objects.get(pk=agent.pk)


def run_one_message(agent: Agent, *types: str) -> AgentSession:
    """One user message, then end once the session has stored one of `types`."""
    job = job_dispatch(agent_id=agent.agent_id, room="lobby", transport="local")
    task = InThread(lambda: run_job(job_id=job.pk, worker_id="egress@test"))
    session = wait_for(lambda: AgentSession.objects.filter(job=job, status=SessionStatus.ACTIVE).first(),
                       what="a live session")
    send_session_command(session.pk, "message", actor="ops", text="hello")
    wait_for(lambda: session.events.filter(type__in=types).exists(), what=" or ".join(types))
    send_session_command(session.pk, "end", actor="ops")
    task.join()
    assert Job.objects.get(pk=job.pk).status in ("completed", "failed")
    return session


def carried(double: OpenAIDouble) -> list[str]:
    return [f"{path} {name}" for path, headers in double.arrivals for name, value in headers.items()
            if any(secret in value for secret in SERVER_SECRETS.values())]


@pytest.mark.parametrize("env_name", ["SECRET_KEY", "LIVEKIT_API_SECRET"])
def test_a_server_secret_named_by_an_agent_never_reaches_its_base_url(
    text_node: Any, openai_double: OpenAIDouble, env_name: str  # noqa: F811
) -> None:
    agent = agent_with({"provider": "openai", "base_url": openai_double.base_url, "api_key_env": env_name,
                        "max_retries": 0})
    session = run_one_message(agent, "error", "response_generated")
    assert carried(openai_double) == []
    error = session.events.filter(type="error").first().data
    assert error["source"] == "llm" and env_name in error["message"]
    assert "CREDENTIAL_ENV_ALLOWLIST" in error["message"]


def test_the_default_openai_key_never_reaches_an_agents_base_url(
    text_node: Any, openai_double: OpenAIDouble  # noqa: F811
) -> None:
    openai_double.chat.push("Hello without the server's key.")
    agent = agent_with({"provider": "openai", "base_url": openai_double.base_url, "max_retries": 0})
    run_one_message(agent, "response_generated")
    assert [path for path, _ in openai_double.arrivals] == ["/v1/chat/completions"]
    assert carried(openai_double) == []
