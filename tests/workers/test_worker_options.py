"""WorkerOptions rules from the data-model seed."""
from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from workers.options import WorkerOptions

VALID = {"server_url": "wss://livekit.example.com", "api_key": "APIkey", "api_secret": "s3cret"}


def error_fields(**overrides: Any) -> set[str]:
    with pytest.raises(ValidationError) as info:
        WorkerOptions(**{**VALID, **overrides})
    return {str(err["loc"][0]) for err in info.value.errors()}


def test_valid_options_pass() -> None:
    options = WorkerOptions(**VALID)
    assert options.max_concurrent_jobs == 80 and options.worker_type == "voice_agent"


@pytest.mark.parametrize("url", ["http://livekit.example.com", "livekit.example.com", "ws://", ""])
def test_server_url_must_be_a_websocket_url(url: str) -> None:
    assert error_fields(server_url=url) == {"server_url"}


@pytest.mark.parametrize("field", ["api_key", "api_secret"])
def test_credentials_must_be_non_empty(field: str) -> None:
    assert error_fields(**{field: "  "}) == {field}


@pytest.mark.parametrize("value", [0, 1001])
def test_max_concurrent_jobs_is_1_to_1000(value: int) -> None:
    assert error_fields(max_concurrent_jobs=value) == {"max_concurrent_jobs"}


def test_max_concurrent_jobs_bounds_are_accepted() -> None:
    WorkerOptions(**VALID, max_concurrent_jobs=1)
    WorkerOptions(**VALID, max_concurrent_jobs=1000)


def test_worker_type_must_be_known() -> None:
    assert error_fields(worker_type="gpu_agent") == {"worker_type"}
    for kind in ("voice_agent", "multimodal_agent", "text_agent", "custom"):
        WorkerOptions(**VALID, worker_type=kind)


def test_log_level_must_be_a_logging_level() -> None:
    assert error_fields(log_level="chatty") == {"log_level"}
    assert WorkerOptions(**VALID, log_level="debug").log_level == "DEBUG"


@pytest.mark.parametrize("value", [0, -5])
def test_timeouts_must_be_positive(value: int) -> None:
    assert error_fields(drain_timeout=value) == {"drain_timeout"}


def test_agent_name_must_be_an_identifier() -> None:
    assert error_fields(agent_name="my agent!") == {"agent_name"}


def test_entry_point_must_be_a_dotted_reference() -> None:
    assert error_fields(entry_point="not a path") == {"entry_point"}


def test_secrets_are_masked_in_the_repr() -> None:
    assert "s3cret" not in repr(WorkerOptions(**VALID))
