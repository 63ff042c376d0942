from __future__ import annotations

import pytest

from agents.tools import ToolRegistry


# The environment variables these tests' HTTP tools name in headers: CREDENTIAL_ENV_ALLOWLIST
# refuses any other (its default is OPENAI_API_KEY alone), so the suite allows them explicitly.
TEST_HEADER_ENV = ["OPENAI_API_KEY", "WEATHER_KEY", "WEATHER_TOKEN", "NOT_SET_TOKEN"]


@pytest.fixture(autouse=True)
def header_env_allowlist(settings):
    settings.CREDENTIAL_ENV_ALLOWLIST = TEST_HEADER_ENV


@pytest.fixture
def fresh_registry() -> ToolRegistry:
    return ToolRegistry()


@pytest.fixture
def tool_server():
    from .http_double import ToolServer

    with ToolServer() as server:
        yield server


@pytest.fixture
def tools_urls(settings):
    settings.ROOT_URLCONF = "tests.tools.urls"


@pytest.fixture
def tools_admin_client(api_key_factory, tools_urls):
    """An application holding an API key with every scope."""
    from rest_framework.test import APIClient

    _, raw = api_key_factory()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def read_only_client(api_key_factory, tools_urls):
    from rest_framework.test import APIClient

    _, raw = api_key_factory("read", name="reader")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def synced_tools(db):
    from agents.tools.sync import tool_sync

    return tool_sync()
