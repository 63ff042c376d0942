"""The entry point a worker runs is named by WorkerOptions.entry_point (WORKER_ENTRY_POINT)."""
from __future__ import annotations

from typing import Any

import pytest

from sessions import entrypoints
from sessions.hosting import EntryPointError, load_entry_point
from sessions.job_context import DEFAULT_ENTRY_POINT
from workers.node import options_from_env


def test_the_default_entry_point_is_the_agent_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKER_ENTRY_POINT", raising=False)
    assert options_from_env().entry_point == DEFAULT_ENTRY_POINT
    assert load_entry_point(DEFAULT_ENTRY_POINT) is entrypoints.agent_session


@pytest.mark.parametrize(("former", "current"), [
    ("workers.entrypoints:agent_session", entrypoints.agent_session),
    ("sessions.launch:run_job_session", entrypoints.agent_session),
    ("workers.entrypoints:echo_session", entrypoints.echo_session),
])
def test_a_former_name_a_deployed_environment_may_carry_still_loads(former: str, current: Any) -> None:
    assert load_entry_point(former) is current


def test_an_entry_point_that_does_not_exist_is_named_in_the_error() -> None:
    with pytest.raises(EntryPointError, match="nowhere.to_be:found"):
        load_entry_point("nowhere.to_be:found")
