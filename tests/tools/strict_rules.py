"""The rules OpenAI states for `strict: true` function schemas (Structured Outputs docs),
as a checker the tests use."""
from __future__ import annotations

from typing import Any

SUPPORTED_KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "const",
    "anyOf", "description", "$defs", "$ref", "pattern", "format", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
}
MAX_DEPTH = 10
MAX_PROPERTIES = 5000


def strict_violations(parameters: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    total = [0]
    if parameters.get("type") != "object":
        problems.append("root: must be an object")
    if "anyOf" in parameters:
        problems.append("root: must not be anyOf")

    def visit(node: Any, path: str, depth: int) -> None:
        if not isinstance(node, dict):
            problems.append(f"{path}: not a schema object")
            return
        if depth > MAX_DEPTH:
            problems.append(f"{path}: nested deeper than {MAX_DEPTH}")
        for key in node:
            if key not in SUPPORTED_KEYWORDS:
                problems.append(f"{path}: unsupported keyword {key!r}")
        ref = node.get("$ref")
        if ref is not None and not (ref == "#" or str(ref).startswith("#/$defs/")):
            problems.append(f"{path}: $ref must point into #/$defs")
        types = node.get("type")
        types = types if isinstance(types, list) else [types]
        if "object" in types or "properties" in node:
            props = node.get("properties", {})
            total[0] += len(props)
            if node.get("additionalProperties") is not False:
                problems.append(f"{path}: additionalProperties must be false")
            if sorted(node.get("required", [])) != sorted(props):
                problems.append(f"{path}: every property must be required")
            for k, v in props.items():
                visit(v, f"{path}.{k}", depth + 1)
        if isinstance(node.get("items"), dict):
            visit(node["items"], f"{path}[]", depth + 1)
        for i, sub in enumerate(node.get("anyOf", [])):
            visit(sub, f"{path}|{i}", depth)
        for name, sub in (node.get("$defs") or {}).items():
            visit(sub, f"$defs.{name}", 1)

    visit(parameters, "root", 1)
    if total[0] > MAX_PROPERTIES:
        problems.append("too many properties")
    return problems
