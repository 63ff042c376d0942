from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from agents.models import Tool
from agents.tools import registry

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_test_tool_prints_result_and_duration() -> None:
    out = run("test_tool", "get_weather", "--args", '{"city": "Paris"}')
    lines = out.splitlines()
    assert lines[0].startswith("result: The weather in Paris is")
    assert lines[1] == "status: ok"
    assert lines[2].startswith("duration: ") and lines[2].endswith(" ms")
    assert Tool.objects.get(name="get_weather").calls == 1


def test_test_tool_fails_on_bad_arguments() -> None:
    with pytest.raises(CommandError, match="invalid_arguments"):
        run("test_tool", "get_weather", "--args", '{"city": ')


def test_test_tool_names_the_available_tools_for_an_unknown_one() -> None:
    with pytest.raises(CommandError, match="available: .*get_weather"):
        run("test_tool", "nope")


def test_validate_tools_syncs_and_passes() -> None:
    out = run("validate_tools")
    assert "✓ get_weather" in out and "all" in out
    assert Tool.objects.filter(name="get_weather", kind="python").exists()


def test_validate_tools_fails_on_a_broken_row() -> None:
    Tool.objects.create(name="broken_http", description="x", kind="http", http_url="https://x.example",
                        timeout_ms=1000, schema={"name": "other", "description": "x", "parameters": {"type": "object"}})
    with pytest.raises(CommandError, match="have problems"):
        run("validate_tools")


def test_list_tools_shows_tools_and_stats() -> None:
    run("validate_tools")
    Tool.objects.filter(name="get_weather").update(calls=4, errors=1, total_latency_ms=8.0)
    rows = [json.loads(line) for line in run("list_tools", "--json").splitlines()]
    weather = next(r for r in rows if r["name"] == "get_weather")
    assert (weather["calls"], weather["errors"], weather["avg_ms"], weather["kind"]) == (4, 1, 2.0, "python")
    assert "get_weather" in run("list_tools")


def test_validate_tools_reports_a_module_that_fails_to_import(settings) -> None:
    settings.TOOL_MODULES = ["tests_tools_missing_module"]
    registry.discover()
    try:
        with pytest.raises(CommandError):
            run("validate_tools")
    finally:
        settings.TOOL_MODULES = []
        registry.discover()
    assert "tests_tools_missing_module" not in registry.import_errors
