"""Errors a tool (or the tool machinery) raises."""
from __future__ import annotations


class ToolError(Exception):
    """Raised by a tool to hand a readable error message back to the model.

    The message is shown to the LLM as-is; any other exception is hidden behind a
    generic message and its traceback goes to the log.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ToolDefinitionError(ValueError):
    """A tool's definition is invalid (bad name, schema, timeout, signature...)."""


class ToolArgumentsError(ValueError):
    """The arguments the model produced are malformed or do not match the schema."""
