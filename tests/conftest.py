"""Shared personas for the whole suite."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agents import services as agent_services
from agents.models import Agent, Tool
from controlplane.models import ApiKey
from controlplane.scopes import ALL_SCOPES


def tool_schema(name: str, properties: dict[str, Any] | None = None, required: list[str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} for tests",
        "parameters": {"type": "object", "properties": properties or {}, "required": required or []},
    }


@pytest.fixture
def registered_tool(db: Any) -> Tool:
    """A tool row as the registry would sync it."""
    tool, _ = Tool.objects.update_or_create(
        name="lookup_order",
        defaults={
            "description": "Look up an order by its number.",
            "module": "tests.conftest",
            "function": "lookup_order",
            "schema": tool_schema("lookup_order", {"order_id": {"type": "string"}}, ["order_id"]),
        },
    )
    return tool


@pytest.fixture
def agent_config(registered_tool: Tool) -> dict[str, Any]:
    return {
        "instructions": "You help customers with their orders.",
        "tools": [registered_tool.name],
        "llm_config": {"provider": "openai", "model": "gpt-4o-mini"},
        "stt_config": {"provider": "openai"},
        "tts_config": {"provider": "openai", "voice": "alloy"},
        "vad_config": {"provider": "webrtcvad", "sensitivity": 0.5},
    }


@pytest.fixture
def configured_agent(agent_config: dict[str, Any]) -> Agent:
    config = dict(agent_config)
    return agent_services.agent_create(agent_id="support", instructions=config.pop("instructions"), actor="test", **config)


@pytest.fixture
def active_agent(configured_agent: Agent) -> Agent:
    return agent_services.agent_activate(agent=configured_agent)


@pytest.fixture
def operator(django_user_model: Any) -> Any:
    """A staff user who watches the dashboard and may act on sessions."""
    return django_user_model.objects.create_user(username="operator", password="operator-pass-123", is_staff=True, is_superuser=True)


@pytest.fixture
def api_key_factory(db: Any) -> Callable[..., tuple[ApiKey, str]]:
    def make(*scopes: str, name: str = "test-key") -> tuple[ApiKey, str]:
        return ApiKey.generate(name=name, scopes=list(scopes) or list(ALL_SCOPES))

    return make
