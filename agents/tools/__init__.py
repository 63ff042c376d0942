"""Function tools: `from agents.tools import function_tool, RunContext, ToolError`.

This package is also the `agents` app's `tools` module, found by tool discovery; it
registers the example tools. Importing it needs neither configured settings nor a ready
app registry: tools can be declared before Django is set up.

Its modules, by job:
- defining tools: function_tool, schema, context, errors, registry, examples; HTTP tools:
  http, egress, secrets, address_guard, log_redaction;
- running calls: bound, executor, outcomes,
  remote (the Celery `tools` queue and its worker side), loading (Tool rows to runnable
  tools), metrics;
- the Django side of the Tool rows: sync (registry to rows), services, serializers, api,
  urls, admin_forms.
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
