"""The tools an executor runs, with the settings of the agent that uses them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .function_tool import DEFAULT_TIMEOUT_MS


@dataclass(frozen=True, slots=True)
class BoundTool:
    """A tool as one agent uses it: where it runs and how long it may take."""

    tool: Any
    execution: str = "inline"  # "inline" | "celery"
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    @classmethod
    def of(cls, tool: Any) -> "BoundTool":
        if isinstance(tool, BoundTool):
            return tool
        return cls(
            tool=tool,
            execution=getattr(tool, "execution", None) or "inline",
            timeout_ms=getattr(tool, "timeout_ms", None) or DEFAULT_TIMEOUT_MS,
        )

    @property
    def name(self) -> str:
        return str(self.tool.name)
