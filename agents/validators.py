"""Validation of tool schemas and of references to registered tools (seed rules)."""
from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError

from agents.tools.egress import CREDENTIAL_NAME, HOST_PATTERN

__all__ = ["HOST_PATTERN", "openai_function_schema_errors", "validate_agent_id", "validate_credential_name",
           "validate_openai_function_schema", "validate_tool_name"]

TOOL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
AGENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}


def validate_tool_name(value: str) -> None:
    if not isinstance(value, str) or not TOOL_NAME_RE.match(value):
        raise ValidationError(
            "Tool names must be identifiers: a letter or underscore, then letters, digits or "
            "underscores, at most 64 characters.",
            code="invalid_tool_name",
        )


def validate_credential_name(value: str) -> None:
    if not isinstance(value, str) or not CREDENTIAL_NAME.match(value):
        raise ValidationError(
            "Credential names are lower case letters, digits, '.', '_' and '-', starting with a letter "
            "or digit, at most 64 characters.",
            code="invalid_credential_name",
        )


def validate_agent_id(value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("agent_id must be a non-empty string.", code="blank")
    if not AGENT_ID_RE.match(value):
        raise ValidationError(
            "agent_id may contain letters, digits and . _ : - and must start with a letter or digit "
            "(it appears in URLs).",
            code="invalid_agent_id",
        )


def _check_json_schema(node: Any, path: str, errors: list[str]) -> None:
    if not isinstance(node, dict):
        errors.append(f"{path}: must be a JSON schema object")
        return
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    for k in kinds:
        if k not in _JSON_TYPES:
            errors.append(f"{path}.type: unknown JSON type {k!r}")
    if "object" in kinds:
        props = node.get("properties", {})
        if not isinstance(props, dict):
            errors.append(f"{path}.properties: must be an object")
            props = {}
        for name, sub in props.items():
            _check_json_schema(sub, f"{path}.properties.{name}", errors)
        required = node.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            errors.append(f"{path}.required: must be a list of property names")
        else:
            for r in required:
                if r not in props:
                    errors.append(f"{path}.required: {r!r} is not a declared property")
    if "array" in kinds and "items" in node:
        _check_json_schema(node["items"], f"{path}.items", errors)
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in node:
            options = node[combinator]
            if not isinstance(options, list) or not options:
                errors.append(f"{path}.{combinator}: must be a non-empty list")
            else:
                for i, sub in enumerate(options):
                    _check_json_schema(sub, f"{path}.{combinator}[{i}]", errors)
    if "enum" in node and (not isinstance(node["enum"], list) or not node["enum"]):
        errors.append(f"{path}.enum: must be a non-empty list")


def openai_function_schema_errors(schema: Any) -> list[str]:
    """Problems that make `schema` not a valid OpenAI function definition.

    Accepts the bare function (`{"name", "description", "parameters"}`) or the tool form
    (`{"type": "function", "function": {...}}`).
    """
    if not isinstance(schema, dict):
        return ["schema: must be a JSON object"]
    if schema.get("type") == "function" and "function" in schema:
        schema = schema["function"]
        if not isinstance(schema, dict):
            return ["schema.function: must be a JSON object"]
    errors: list[str] = []
    name = schema.get("name")
    if not isinstance(name, str) or not re.match(r"^[a-zA-Z0-9_-]{1,64}$", name):
        errors.append("schema.name: required, 1-64 letters, digits, _ or -")
    description = schema.get("description", "")
    if not isinstance(description, str):
        errors.append("schema.description: must be a string")
    params = schema.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(params, dict) or params.get("type") != "object":
        errors.append("schema.parameters: must be a JSON schema with type 'object'")
    else:
        _check_json_schema(params, "schema.parameters", errors)
    return errors


def validate_openai_function_schema(schema: Any) -> None:
    errors = openai_function_schema_errors(schema)
    if errors:
        raise ValidationError(errors, code="invalid_schema")
