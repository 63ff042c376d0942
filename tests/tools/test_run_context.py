from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from agents.tools import FunctionCall, RunContext


def test_each_execution_gets_its_own_id() -> None:
    a = RunContext.create(call_id="c", name="t", arguments="{}")
    b = RunContext.create(call_id="c", name="t", arguments="{}")
    assert a.execution_id != b.execution_id


def test_timeout_at_must_follow_started_at() -> None:
    ctx = RunContext.create(call_id="c", name="t", arguments="{}", timeout_ms=1000)
    assert ctx.timeout_at - ctx.started_at == timedelta(milliseconds=1000)
    with pytest.raises(ValueError, match="timeout_at must be after started_at"):
        RunContext(function_call=FunctionCall("c", "t", "{}"), started_at=ctx.started_at,
                   timeout_at=ctx.started_at)


def test_the_function_call_needs_a_name() -> None:
    with pytest.raises(ValueError, match="name"):
        RunContext(function_call=FunctionCall("c", "", "{}"))


def test_log_carries_the_execution_fields(caplog) -> None:
    ctx = RunContext.create(call_id="call-9", name="get_weather", arguments="{}", session_id="s-2")
    with caplog.at_level(logging.INFO, logger="agents.tools"):
        ctx.log("looked up %s", "Paris", city="Paris")
    record = caplog.records[-1]
    assert record.getMessage().startswith("looked up Paris [")
    assert "call_id=call-9" in record.getMessage() and "session_id=s-2" in record.getMessage()
    assert record.tool_execution["execution_id"] == ctx.execution_id
    assert record.tool_execution["city"] == "Paris"


def test_record_metric_accumulates() -> None:
    ctx = RunContext.create(call_id="c", name="t", arguments="{}")
    ctx.record_metric("rows", 2)
    ctx.record_metric("rows", 3)
    assert ctx.metrics == {"rows": 5.0}
