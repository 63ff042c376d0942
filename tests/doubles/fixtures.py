"""pytest fixtures for the test doubles. Use from a conftest.py:

    from tests.doubles.fixtures import openai_double, openai_env  # noqa: F401
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

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
