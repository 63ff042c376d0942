"""How a tool call ended, and the text the model reads when it failed.

Shared by the executor (inline calls) and the Celery side (`remote`), so a failure reads
the same wherever the tool ran.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

TOOL_ERROR = "tool_error"
EXCEPTION = "exception"
TIMEOUT = "timeout"
INVALID_ARGUMENTS = "invalid_arguments"
UNKNOWN_TOOL = "unknown_tool"


@dataclass(frozen=True, slots=True)
class Outcome:
    output: str
    error_kind: str | None = None


def error_message(kind: str, name: str, detail: str = "", *, available: Sequence[str] = ()) -> str:
    """The text the model reads when a call fails; says what to do next where it can."""
    if kind == UNKNOWN_TOOL:
        tools = ", ".join(available) if available else "none"
        return f"Error: there is no tool named {name!r}. Available tools: {tools}."
    if kind == INVALID_ARGUMENTS:
        return f"Error: invalid arguments for tool {name!r}: {detail}. Call it again with corrected arguments."
    if kind == TIMEOUT:
        return f"Error: tool {name!r} did not finish within {detail} ms."
    if kind == TOOL_ERROR:
        return f"Error from tool {name!r}: {detail}"
    return f"Error: tool {name!r} failed with an internal error."
