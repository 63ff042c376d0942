from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Literal, Optional

import pytest
from pydantic import BaseModel, Field

from agents.tools import RunContext, ToolDefinitionError, function_tool

from .strict_rules import strict_violations


class Unit(enum.Enum):
    C = "c"
    F = "f"


class Address(BaseModel):
    street: str
    zip_code: Optional[str] = None
    floor: int = 0


class Tree(BaseModel):
    label: str
    children: list["Tree"] = []


@dataclass
class Point:
    x: float
    y: float = 0.0


@function_tool(register=False)
async def everything(
    ctx: RunContext,
    a: str,
    b: int,
    c: float,
    d: bool,
    tags: list[str],
    mode: Literal["fast", "slow"],
    unit: Unit,
    count: Annotated[int, Field(description="How many", ge=1)],
    address: Address,
    where: Point,
    stops: list[Address],
    maybe: Optional[str],
    n: int = 3,
    unit2: Unit = Unit.C,
    note: str | None = None,
) -> str:
    """Every supported type at once.

    Args:
        a: An a.
    """
    return "ok"


@function_tool(register=False)
def tree(root: Tree, limit: int = 5) -> str:
    """A recursive model."""
    return root.label


def test_the_strict_variant_follows_openai_strict_rules() -> None:
    for tool in (everything, tree):
        schema = tool.openai_schema(strict=True)
        assert schema["function"]["strict"] is True
        assert strict_violations(schema["function"]["parameters"]) == []


def test_the_rules_checker_catches_the_non_strict_variant() -> None:
    # Guards the checker itself: the plain schema breaks the rules (optional props,
    # defaults, free additionalProperties on nested models).
    assert strict_violations(everything.openai_schema()["function"]["parameters"])


def test_optional_properties_become_required_and_nullable() -> None:
    p = everything.openai_schema(strict=True)["function"]["parameters"]
    assert p["properties"]["n"] == {"type": ["integer", "null"]}
    assert p["properties"]["unit2"]["enum"] == ["c", "f", None]
    nested = p["properties"]["address"]
    assert nested["required"] == ["street", "zip_code", "floor"]
    assert nested["properties"]["floor"] == {"type": ["integer", "null"]}
    assert nested["additionalProperties"] is False
    # A required Optional keeps exactly one null branch.
    assert p["properties"]["maybe"]["anyOf"].count({"type": "null"}) == 1


def test_null_for_an_optional_property_means_the_default() -> None:
    args = everything.parse_arguments(
        '{"a": "x", "b": 1, "c": 1.5, "d": true, "tags": [], "mode": "fast", "unit": "f",'
        ' "count": 2, "address": {"street": "Main", "zip_code": null, "floor": null},'
        ' "where": {"x": 1, "y": null}, "stops": [{"street": "S", "zip_code": "1", "floor": null}],'
        ' "maybe": null, "n": null, "unit2": null, "note": null}'
    )
    assert args["n"] == 3
    assert args["unit2"] is Unit.C
    assert args["note"] is None
    assert args["address"] == Address(street="Main", zip_code=None, floor=0)
    assert args["where"] == Point(x=1.0, y=0.0)
    assert args["stops"][0].floor == 0
    assert args["maybe"] is None


def test_the_plain_schema_is_left_untouched_by_the_strict_variant() -> None:
    before = everything.openai_schema()
    everything.openai_schema(strict=True)
    assert everything.openai_schema() == before
    assert "strict" not in before["function"]


def test_free_form_dicts_cannot_be_strict() -> None:
    @function_tool(register=False)
    def scores(values: dict[str, float]) -> str:
        """Dict."""
        return ""

    assert scores.openai_schema()  # fine without strict
    with pytest.raises(ToolDefinitionError, match="free-form objects"):
        scores.openai_schema(strict=True)


def test_a_raw_tool_gets_a_strict_variant_too() -> None:
    @function_tool(
        register=False,
        raw_schema={
            "name": "lookup",
            "description": "Look up.",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}, "limit": {"type": "integer", "default": 5}},
                "required": ["q"],
            },
        },
    )
    def lookup(arguments: dict) -> str:
        return arguments["q"]

    p = lookup.openai_schema(strict=True)["function"]["parameters"]
    assert strict_violations(p) == []
    assert p["properties"]["limit"] == {"type": ["integer", "null"]}


def test_sets_lose_unique_items_in_strict_mode_but_still_validate() -> None:
    @function_tool(register=False)
    def tagset(tags: set[str]) -> str:
        """Set."""
        return ",".join(sorted(tags))

    assert tagset.openai_schema()["function"]["parameters"]["properties"]["tags"]["uniqueItems"] is True
    strict = tagset.openai_schema(strict=True)["function"]["parameters"]
    assert strict_violations(strict) == []
    assert tagset.parse_arguments('{"tags": ["a", "b", "a"]}') == {"tags": {"a", "b"}}


def test_fixed_length_tuples_cannot_be_strict() -> None:
    @function_tool(register=False)
    def pair(p: tuple[int, int]) -> str:
        """Tuple."""
        return ""

    assert pair.openai_schema()["function"]["parameters"]["properties"]["p"]["prefixItems"]
    with pytest.raises(ToolDefinitionError, match="tuples"):
        pair.openai_schema(strict=True)
