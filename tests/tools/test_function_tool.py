from __future__ import annotations

import asyncio
import enum
import threading
from typing import Optional

import pytest
from pydantic import BaseModel

from agents.tools import FunctionTool, RunContext, ToolArgumentsError, function_tool, raw_function_tool
from agents.tools.function_tool import to_output


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Item(BaseModel):
    sku: str
    qty: int = 1


@function_tool(name="paint", description="Paint things.", timeout=2.5, execution="celery", register=False)
def paint(color: Color, items: list[Item], note: Optional[str] = None) -> dict:
    return {"color": color.value, "n": sum(i.qty for i in items), "note": note}


def test_the_decorated_object_still_works_as_the_plain_function() -> None:
    assert paint(Color.RED, [Item(sku="a", qty=2)]) == {"color": "red", "n": 2, "note": None}
    assert isinstance(paint, FunctionTool)
    assert paint.__name__ == "paint"


def test_it_exposes_name_description_and_options() -> None:
    assert paint.name == "paint"
    assert paint.description == "Paint things."
    assert paint.timeout_ms == 2500
    assert paint.execution == "celery"
    schema = paint.openai_schema()
    assert schema["type"] == "function"
    assert set(schema["function"]) == {"name", "description", "parameters"}


def test_bare_decorator_uses_function_name_and_docstring() -> None:
    @function_tool(register=False)
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    assert (echo.name, echo.description, echo.timeout_ms, echo.execution) == (
        "echo", "Echo the text back.", None, None,
    )


def test_arguments_are_converted_to_the_declared_types() -> None:
    args = paint.parse_arguments('{"color": "blue", "items": [{"sku": "x", "qty": "3"}]}')
    assert args["color"] is Color.BLUE
    assert args["items"] == [Item(sku="x", qty=3)]
    assert args["note"] is None


@pytest.mark.parametrize(
    "raw, message",
    [
        ('{"color": "red", "items": [', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"color": "green", "items": []}', "color"),
        ('{"color": "red"}', "items: Field required"),
        ('{"color": "red", "items": [], "extra": 1}', "extra: unexpected argument"),
        ('{"color": "red", "items": [{"qty": 1}]}', "items.0.sku"),
    ],
    ids=["malformed", "not-object", "bad-enum", "missing", "extra", "nested"],
)
def test_bad_arguments_give_a_readable_error(raw: str, message: str) -> None:
    with pytest.raises(ToolArgumentsError, match=message):
        paint.parse_arguments(raw)


def test_an_empty_argument_string_means_no_arguments() -> None:
    @function_tool(register=False)
    def ping() -> str:
        """Ping."""
        return "pong"

    assert ping.parse_arguments("") == {}


async def test_sync_tools_run_in_a_thread_and_async_tools_in_the_loop() -> None:
    main = threading.get_ident()

    @function_tool(register=False)
    def where_sync() -> int:
        """Thread id."""
        return threading.get_ident()

    @function_tool(register=False)
    async def where_async(ctx: RunContext) -> int:
        """Thread id."""
        await asyncio.sleep(0)
        return threading.get_ident()

    ctx = RunContext.create(call_id="c", name="x", arguments="{}")
    assert await where_sync.run({}, ctx) != main
    assert await where_async.run({}, ctx) == main


async def test_the_context_parameter_receives_the_run_context() -> None:
    @function_tool(register=False)
    async def whoami(ctx: RunContext, greeting: str) -> str:
        """Who."""
        return f"{greeting} {ctx.user_data['user']} {ctx.call_id}"

    ctx = RunContext.create(call_id="call-1", name="whoami", arguments="{}", user_data={"user": "ana"})
    assert await whoami.run(whoami.parse_arguments('{"greeting": "hi"}'), ctx) == "hi ana call-1"


async def test_raw_tools_receive_the_arguments_dict() -> None:
    @raw_function_tool(
        {
            "name": "add",
            "description": "Add two numbers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
            },
        },
        register=False,
    )
    def add(arguments: dict, ctx: RunContext) -> float:
        return arguments["a"] + arguments["b"]

    assert add.name == "add" and add.is_raw
    args = add.parse_arguments('{"a": 1, "b": 2.5}')
    assert await add.run(args, RunContext.create(call_id="c", name="add", arguments="")) == 3.5
    with pytest.raises(ToolArgumentsError, match="'b' is a required property"):
        add.parse_arguments('{"a": 1}')


def test_outputs_are_strings_for_the_model() -> None:
    assert to_output("x") == "x"
    assert to_output(None) == ""
    assert to_output({"a": 1}) == '{"a": 1}'
    assert to_output(Item(sku="s")) == '{"sku":"s","qty":1}'
    assert to_output(Color.RED) == "red"
    assert to_output(3) == "3"
