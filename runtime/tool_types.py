"""A tool call as the model made it, where it was made, and what it gave back.

The session runtime hands these to its `ToolExecutor` and reads the results, so this
module stays plain Python (no Django, no imports from the rest of the tools package).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str  # the raw JSON string the model produced


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    name: str
    output: str  # what the model sees
    is_error: bool = False
    # None on success; otherwise one of: tool_error, exception, timeout,
    # invalid_arguments, unknown_tool
    error_kind: str | None = None
    duration_ms: float = 0.0


@dataclass(slots=True)
class ToolInvocation:
    """What the runtime knows about the call site; becomes the tool's RunContext."""

    session: Any  # the runtime AgentSession handle
    speech_handle: Any | None
    user_data: dict[str, Any] = field(default_factory=dict)
    session_id: str = ""
    agent_id: str = ""
