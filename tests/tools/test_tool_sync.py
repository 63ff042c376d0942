from __future__ import annotations

import pytest

from agents.models import Tool
from agents.tools import ToolRegistry, function_tool
from agents.tools.sync import tool_sync

pytestmark = pytest.mark.django_db


@function_tool(name="sync_lookup", timeout_ms=1500, execution="celery", metadata={"team": "orders"}, register=False)
def sync_lookup(order_id: str, verbose: bool = False) -> str:
    """Look up an order.

    Args:
        order_id: The order number.
    """
    return order_id


@function_tool(name="sync_plain", register=False)
def sync_plain(x: int) -> int:
    """Plain tool with no explicit options."""
    return x


@pytest.fixture
def reg() -> ToolRegistry:
    r = ToolRegistry()
    r._discovered = True  # only what the test registers
    r.register(sync_lookup)
    r.register(sync_plain)
    return r


def test_discovered_tools_become_rows(reg: ToolRegistry) -> None:
    report = tool_sync(registry=reg)
    assert sorted(report.created) == ["sync_lookup", "sync_plain"]
    row = Tool.objects.get(name="sync_lookup")
    assert (row.kind, row.module, row.function, row.arity) == ("python", __name__, "sync_lookup", 2)
    assert (row.timeout_ms, row.execution, row.metadata) == (1500, "celery", {"team": "orders"})
    assert row.schema == sync_lookup.function_schema()
    assert row.parameters[0] == {"name": "order_id", "type": "string", "required": True,
                                 "description": "The order number."}
    assert row.return_type == "str"
    row.full_clean()


def test_a_second_sync_changes_nothing(reg: ToolRegistry) -> None:
    tool_sync(registry=reg)
    report = tool_sync(registry=reg)
    assert sorted(report.unchanged) == ["sync_lookup", "sync_plain"]
    assert report.created == report.updated == []


def test_operator_settings_survive_unless_the_code_states_them(reg: ToolRegistry) -> None:
    tool_sync(registry=reg)
    Tool.objects.filter(name="sync_plain").update(timeout_ms=9000, execution="celery", enabled=False)
    Tool.objects.filter(name="sync_lookup").update(timeout_ms=9000)
    tool_sync(registry=reg)
    plain = Tool.objects.get(name="sync_plain")
    assert (plain.timeout_ms, plain.execution, plain.enabled) == (9000, "celery", False)
    assert Tool.objects.get(name="sync_lookup").timeout_ms == 1500


def test_a_name_taken_by_an_http_tool_is_reported(reg: ToolRegistry) -> None:
    Tool.objects.create(name="sync_plain", description="HTTP", kind="http", http_url="https://x.example",
                        schema={"name": "sync_plain", "description": "HTTP", "parameters": {"type": "object", "properties": {}}})
    report = tool_sync(registry=reg)
    assert "already exists" in report.failed["sync_plain"]
    assert Tool.objects.get(name="sync_plain").kind == "http"


def test_rows_without_code_are_reported_as_orphaned(reg: ToolRegistry, registered_tool) -> None:
    assert tool_sync(registry=reg).orphaned == [registered_tool.name]
