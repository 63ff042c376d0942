"""The data-model seed's FunctionTool rules, enforced by the model layer."""
from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from agents.models import Tool
from tests.conftest import tool_schema

pytestmark = pytest.mark.django_db


def make(**overrides: Any) -> Tool:
    fields = {"name": "get_time", "description": "Tell the time.", "module": "m", "function": "f", "schema": tool_schema("get_time")}
    fields.update(overrides)
    if "name" in overrides and "schema" not in overrides:
        fields["schema"] = tool_schema(overrides["name"])
    return Tool(**fields)


def errors_of(tool: Tool) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        tool.full_clean()
    return info.value.message_dict


def test_a_valid_tool_passes() -> None:
    make().full_clean()


@pytest.mark.parametrize("name", ["", "1abc", "has space", "dash-name", "x" * 65])
def test_the_name_must_be_a_valid_identifier(name: str) -> None:
    assert "name" in errors_of(make(name=name))


def test_the_name_is_unique(registered_tool: Tool) -> None:
    assert "name" in errors_of(make(name=registered_tool.name))


def test_a_description_is_required() -> None:
    assert "description" in errors_of(make(description=" "))


def test_the_description_is_at_most_500_chars() -> None:
    assert "description" in errors_of(make(description="d" * 501))
    make(description="d" * 500).full_clean()


@pytest.mark.parametrize("timeout", [0, 300_001])
def test_the_timeout_is_1_to_300000_ms(timeout: int) -> None:
    assert "timeout_ms" in errors_of(make(timeout_ms=timeout))


@pytest.mark.parametrize("timeout", [1, 300_000])
def test_timeout_bounds_are_accepted(timeout: int) -> None:
    make(timeout_ms=timeout).full_clean()


@pytest.mark.parametrize(
    ("schema", "needle"),
    [
        ("not a dict", "JSON object"),
        ({"name": "get_time", "parameters": {"type": "array"}}, "type 'object'"),
        ({"name": "get_time", "parameters": {"type": "object", "properties": {}, "required": ["tz"]}}, "'tz'"),
        ({"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "text"}}}}, "unknown JSON type"),
        ({"name": "other_name", "parameters": {"type": "object", "properties": {}}}, "must equal the tool name"),
    ],
)
def test_the_schema_must_be_a_valid_openai_function(schema: Any, needle: str) -> None:
    assert needle in " ".join(errors_of(make(schema=schema))["schema"])


def test_the_tool_form_of_the_schema_is_accepted() -> None:
    make(schema={"type": "function", "function": tool_schema("get_time")}).full_clean()


def test_python_tools_name_their_module_and_function() -> None:
    assert "module" in errors_of(make(module="", function=""))


def test_http_tools_need_a_url() -> None:
    assert "http_url" in errors_of(make(kind="http", module="", function=""))
