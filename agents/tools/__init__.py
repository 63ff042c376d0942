"""Function tools: `from agents.tools import function_tool, RunContext, ToolError`.

This package is also the `agents` app's `tools` module, found by tool discovery; it
registers the example tools.
"""
from .context import FunctionCall, RunContext
from .errors import ToolArgumentsError, ToolDefinitionError, ToolError
from .function_tool import FunctionTool, function_tool, raw_function_tool
from .registry import RegistryEvent, ToolRegistry, registry

from . import examples  # noqa: E402,F401  (registers get_weather)

__all__ = [
    "FunctionCall",
    "FunctionTool",
    "RegistryEvent",
    "RunContext",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolError",
    "ToolRegistry",
    "function_tool",
    "raw_function_tool",
    "registry",
]
