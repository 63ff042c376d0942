"""pytest fixtures for the test doubles. Use from a conftest.py:

    from tests.doubles.fixtures import openai_double, openai_env, livekit_double  # noqa: F401
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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
