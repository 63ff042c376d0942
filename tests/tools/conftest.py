from __future__ import annotations

import pytest

from agents.tools import ToolRegistry


@pytest.fixture
def fresh_registry() -> ToolRegistry:
    return ToolRegistry()
