"""The sessions tests that open event sinks end with the sink's writer idle, so none leaves
rows half-written (or the writer's connection open) for the next."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessions.event_sink import wait_writer_idle


@pytest.fixture
def writer_idle() -> Iterator[None]:
    yield
    wait_writer_idle()
