from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Literal, Optional

import pytest
from pydantic import BaseModel, Field

from agents.tools import RunContext, ToolDefinitionError, function_tool


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Address(BaseModel):
    street: str
    zip_code: Optional[str] = None


class Node(BaseModel):
    value: int
    children: list["Node"] = []


@dataclass
class Point:
    x: float
    y: float = 0.0


def params(tool) -> dict:
    return tool.openai_schema()["function"]["parameters"]


def test_it_maps_scalar_types() -> None:
    @function_tool(register=False)
    def t(a: str, b: int, c: float, d: bool) -> str:
        """Scalars."""
        return ""

    p = params(t)
    assert {k: v["type"] for k, v in p["properties"].items()} == {
        "a": "string", "b": "integer", "c": "number", "d": "boolean",
    }
    assert p["required"] == ["a", "b", "c", "d"]
    assert p["type"] == "object"


def test_it_maps_lists_and_dicts_of_scalars() -> None:
    @function_tool(register=False)
    def t(tags: list[str], scores: dict[str, float], matrix: list[list[int]]) -> str:
        """Containers."""
        return ""

    p = params(t)["properties"]
    assert p["tags"] == {"type": "array", "items": {"type": "string"}}
    assert p["scores"] == {"type": "object", "additionalProperties": {"type": "number"}}
    assert p["matrix"]["items"] == {"type": "array", "items": {"type": "integer"}}


def test_optional_and_defaults_decide_what_is_required() -> None:
    @function_tool(register=False)
    def t(a: str, b: Optional[str], c: int = 3, d: str | None = None) -> str:
        """Defaults."""
        return ""

    p = params(t)
    assert p["required"] == ["a", "b"]
    assert {"type": "null"} in p["properties"]["b"]["anyOf"]
    assert p["properties"]["c"]["default"] == 3
    assert p["properties"]["d"]["default"] is None


def test_literal_and_enum_become_enums() -> None:
    @function_tool(register=False)
    def t(mode: Literal["fast", "slow"], unit: Unit = Unit.CELSIUS) -> str:
        """Enums."""
        return ""

    p = params(t)["properties"]
    assert p["mode"] == {"type": "string", "enum": ["fast", "slow"]}
    assert p["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert p["unit"]["default"] == "celsius"
    assert "$ref" not in str(params(t))


def test_annotated_field_description_and_constraints() -> None:
    @function_tool(register=False)
    def t(count: Annotated[int, Field(description="How many", ge=1, le=10)]) -> str:
        """Annotated."""
        return ""

    assert params(t)["properties"]["count"] == {
        "type": "integer", "description": "How many", "minimum": 1, "maximum": 10,
    }


def test_pydantic_models_and_dataclasses_become_nested_objects() -> None:
    @function_tool(register=False)
    def t(address: Address, where: Point, many: list[Address]) -> str:
        """Nested."""
        return ""

    p = params(t)
    assert "$defs" not in p
    addr = p["properties"]["address"]
    assert addr["type"] == "object"
    assert addr["required"] == ["street"]
    assert set(addr["properties"]) == {"street", "zip_code"}
    assert p["properties"]["where"]["properties"]["x"] == {"type": "number"}
    assert p["properties"]["many"]["items"]["properties"]["street"] == {"type": "string"}
    assert "title" not in str(p)


def test_recursive_models_keep_a_ref() -> None:
    @function_tool(register=False)
    def t(tree: Node) -> str:
        """Tree."""
        return ""

    p = params(t)
    assert p["properties"]["tree"] == {"$ref": "#/$defs/Node"}
    assert p["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}


@pytest.mark.parametrize(
    "doc",
    [
        # Google
        """Look up a city.

        Args:
            city: The city name.
            days: How many days ahead.
        """,
        # reST
        """Look up a city.

        :param city: The city name.
        :param days: How many days ahead.
        """,
        # NumPy
        """Look up a city.

        Parameters
        ----------
        city : str
            The city name.
        days : int
            How many days ahead.
        """,
    ],
    ids=["google", "rest", "numpy"],
)
def test_descriptions_come_from_the_docstring(doc: str) -> None:
    def lookup(city: str, days: int = 1) -> str:
        return city

    lookup.__doc__ = doc
    tool = function_tool(lookup, register=False)
    assert tool.description == "Look up a city."
    props = params(tool)["properties"]
    assert props["city"]["description"] == "The city name."
    assert props["days"]["description"] == "How many days ahead."


def test_an_annotated_description_wins_over_the_docstring() -> None:
    @function_tool(register=False)
    def t(city: Annotated[str, Field(description="from Field")]) -> str:
        """Doc.

        Args:
            city: from docstring
        """
        return city

    assert params(t)["properties"]["city"]["description"] == "from Field"


def test_run_context_is_injected_not_exposed() -> None:
    @function_tool(register=False)
    async def t(ctx: RunContext, city: str) -> str:
        """Ctx."""
        return city

    assert list(params(t)["properties"]) == ["city"]
    assert t.context_param == "ctx"
    assert t.arity == 1


def test_sync_and_async_functions_are_both_accepted() -> None:
    @function_tool(register=False)
    def s(a: int) -> int:
        """Sync."""
        return a

    @function_tool(register=False)
    async def a(a: int) -> int:
        """Async."""
        return a

    assert not s.is_async and a.is_async
    assert s.openai_schema()["function"]["parameters"] == a.openai_schema()["function"]["parameters"]


def test_a_tool_without_parameters_has_an_empty_object_schema() -> None:
    @function_tool(register=False)
    def now() -> str:
        """The time."""
        return "noon"

    assert params(now) == {"type": "object", "properties": {}, "additionalProperties": False}


@pytest.mark.parametrize(
    "define, message",
    [
        (lambda: function_tool(_unannotated_fn, register=False), "type annotation"),
        (lambda: function_tool(name="1bad", register=False)(_doc_fn), "valid identifier"),
        (lambda: function_tool(description="x" * 501, register=False)(_doc_fn), "at most 500"),
        (lambda: function_tool(timeout_ms=0, register=False)(_doc_fn), "between 1 and 300000"),
        (lambda: function_tool(timeout_ms=300_001, register=False)(_doc_fn), "between 1 and 300000"),
        (lambda: function_tool(execution="thread", register=False)(_doc_fn), "execution"),
        (lambda: function_tool(_no_doc_fn, register=False), "needs a description"),
        (lambda: function_tool(_varargs_fn, register=False), r"\*args"),
    ],
    ids=["no-annotation", "bad-name", "long-description", "timeout-0", "timeout-too-long",
         "bad-execution", "no-description", "varargs"],
)
def test_it_rejects_invalid_definitions(define, message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=message):
        define()


def _doc_fn(a: int) -> int:
    """Doc."""
    return a


def _no_doc_fn(a: int) -> int:
    return a


def _varargs_fn(*a: int) -> int:
    """Doc."""
    return 0


def _unannotated_fn(a):  # type: ignore[no-untyped-def]
    """Doc."""
    return a
