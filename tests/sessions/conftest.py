"""The sessions tests: each ends with the sink's writer idle, so none leaves rows half-written
for the next."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessions.event_sink import wait_writer_idle


@pytest.fixture(autouse=True)
def _writer_idle() -> Iterator[None]:
    yield
    wait_writer_idle()
