from __future__ import annotations

import pytest

from agents.tools import ToolRegistry


@pytest.fixture
def fresh_registry() -> ToolRegistry:
    return ToolRegistry()


@pytest.fixture
def tool_server():
    from .http_double import ToolServer

    with ToolServer() as server:
        yield server
