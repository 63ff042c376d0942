"""Build OpenAI function schemas from Python signatures, and their strict variant.

The parameters of a tool become a pydantic model (so validation and conversion to the
declared types come for free); its JSON schema is cleaned up into the compact form
OpenAI expects: `$ref`s inlined, titles removed. `to_strict` turns a schema into one
that OpenAI's `strict: true` accepts.
"""
from __future__ import annotations

import copy
import inspect
import re
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Callable, get_args, get_origin

import docstring_parser
import jsonschema
import pydantic
from pydantic.fields import FieldInfo

from .context import RunContext
from .errors import ToolDefinitionError

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_DESCRIPTION = 500
MIN_TIMEOUT_MS = 1
MAX_TIMEOUT_MS = 300_000

# Keywords OpenAI's strict mode does not accept; dropped from the strict variant.
_STRICT_DROP = ("default", "title", "examples", "uniqueItems")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


@dataclass(frozen=True, slots=True)
class Docstring:
    description: str
    params: dict[str, str]
    returns: str


def parse_docstring(fn: Callable[..., Any]) -> Docstring:
    doc = inspect.getdoc(fn) or ""
    if not doc:
        return Docstring("", {}, "")
    parsed = docstring_parser.parse(doc)  # auto-detects Google, reST, NumPy, Epydoc
    parts = [p for p in (parsed.short_description, parsed.long_description) if p]
    params = {p.arg_name: (p.description or "").strip() for p in parsed.params}
    returns = (parsed.returns.description or "") if parsed.returns else ""
    return Docstring("\n\n".join(parts).strip(), params, returns.strip())


def is_context_type(hint: Any) -> bool:
    if hint is RunContext:
        return True
    origin = get_origin(hint)
    if origin is Annotated:
        return is_context_type(get_args(hint)[0])
    if origin is typing.Union or origin is getattr(__import__("types"), "UnionType", None):
        args = [a for a in get_args(hint) if a is not type(None)]
        return len(args) == 1 and is_context_type(args[0])
    return False


def _annotated_description(hint: Any) -> bool:
    if get_origin(hint) is Annotated:
        for meta in get_args(hint)[1:]:
            if isinstance(meta, FieldInfo) and meta.description:
                return True
    return False


@dataclass(frozen=True, slots=True)
class Signature:
    model: type[pydantic.BaseModel]
    context_param: str | None
    param_names: tuple[str, ...]
    required: frozenset[str]
    parameters: dict[str, Any]  # the cleaned JSON schema (non-strict)
    return_type: str
    description: str


_MODEL_CONFIG = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=False)


def build_signature(fn: Callable[..., Any], *, tool_name: str) -> Signature:
    """Inspect `fn` and build its argument model and JSON schema."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # unresolved forward references and the like
        raise ToolDefinitionError(f"tool {tool_name!r}: cannot resolve type hints: {exc}") from exc
    doc = parse_docstring(fn)
    fields: dict[str, Any] = {}
    context_param: str | None = None
    names: list[str] = []
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(f"tool {tool_name!r}: *args/**kwargs are not supported")
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolDefinitionError(f"tool {tool_name!r}: positional-only parameter {pname!r}")
        if pname not in hints:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: parameter {pname!r} needs a type annotation"
            )
        hint = hints[pname]
        if is_context_type(hint):
            context_param = pname
            continue
        default = ... if param.default is param.empty else param.default
        desc = None if _annotated_description(hint) else (doc.params.get(pname) or None)
        fields[pname] = (hint, pydantic.Field(default, **({"description": desc} if desc else {})))
        names.append(pname)
    try:
        model = pydantic.create_model(  # type: ignore[call-overload]
            f"{tool_name}_args", __config__=_MODEL_CONFIG, **fields
        )
        raw_schema = model.model_json_schema()
    except Exception as exc:
        raise ToolDefinitionError(f"tool {tool_name!r}: unsupported parameter type: {exc}") from exc
    ret = hints.get("return", inspect.Signature.empty)
    return_type = "" if ret is inspect.Signature.empty else _type_name(ret)
    required = frozenset(n for n, f in model.model_fields.items() if f.is_required())
    return Signature(
        model=model,
        context_param=context_param,
        param_names=tuple(names),
        required=required,
        parameters=clean_schema(raw_schema),
        return_type=return_type,
        description=doc.description,
    )


def _type_name(tp: Any) -> str:
    if tp is None or tp is type(None):
        return "None"
    if isinstance(tp, type) and get_origin(tp) is None:
        return tp.__name__
    return repr(tp).replace("typing.", "")


# --- schema cleaning ----------------------------------------------------------------


def _walk(schema: Any, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    """Apply `fn` to every subschema, bottom-up, knowing which keys hold subschemas."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _walk(v, fn) for k, v in out["properties"].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = _walk(out[key], fn)
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_walk(s, fn) for s in out[key]]
    if isinstance(out.get("$defs"), dict):
        out["$defs"] = {k: _walk(v, fn) for k, v in out["$defs"].items()}
    return fn(out)


def _refs_in(schema: Any) -> set[str]:
    found: set[str] = set()

    def visit(s: dict[str, Any]) -> dict[str, Any]:
        ref = s.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            found.add(ref[len("#/$defs/") :])
        return s

    _walk(schema, visit)
    return found


def _recursive_defs(defs: dict[str, Any]) -> set[str]:
    edges = {name: _refs_in(body) for name, body in defs.items()}
    recursive: set[str] = set()
    for start in defs:
        stack, seen = list(edges.get(start, ())), set()
        while stack:
            cur = stack.pop()
            if cur == start:
                recursive.add(start)
                break
            if cur in seen:
                continue
            seen.add(cur)
            stack.extend(edges.get(cur, ()))
    return recursive


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Inline `$defs` references, except for recursive ones (which stay as `$ref`)."""
    defs: dict[str, Any] = schema.get("$defs") or {}
    if not defs:
        return schema
    keep = _recursive_defs(defs)

    def resolve(node: Any, depth: int = 0) -> Any:
        if isinstance(node, list):
            return [resolve(n, depth) for n in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref[len("#/$defs/") :]
            if name not in keep and name in defs and depth < 64:
                siblings = {k: v for k, v in node.items() if k != "$ref"}
                return {**resolve(defs[name], depth + 1), **resolve(siblings, depth)}
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k == "$defs":
                continue
            if k == "properties" and isinstance(v, dict):
                out[k] = {pk: resolve(pv, depth) for pk, pv in v.items()}
            else:
                out[k] = resolve(v, depth)
        return out

    result = resolve(schema)
    if keep:
        result["$defs"] = {name: resolve(defs[name]) for name in keep}
    return result


def _drop_titles(s: dict[str, Any]) -> dict[str, Any]:
    s.pop("title", None)
    return s


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    out = _walk(inline_refs(schema), _drop_titles)
    out.setdefault("type", "object")
    out.setdefault("properties", {})
    if not out.get("required"):
        out.pop("required", None)
    return out


# --- strict mode ---------------------------------------------------------------------


def _allows_null(s: dict[str, Any]) -> bool:
    t = s.get("type")
    if t == "null" or (isinstance(t, list) and "null" in t):
        return True
    return any(_allows_null(sub) for sub in s.get("anyOf", []) if isinstance(sub, dict))


def _nullable(s: dict[str, Any]) -> dict[str, Any]:
    if _allows_null(s):
        return s
    if "anyOf" in s:
        return {**s, "anyOf": [*s["anyOf"], {"type": "null"}]}
    t = s.get("type")
    if isinstance(t, str) and "$ref" not in s:
        out = {**s, "type": [t, "null"]}
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    desc = s.get("description")
    inner = {k: v for k, v in s.items() if k != "description"}
    out = {"anyOf": [inner, {"type": "null"}]}
    if desc:
        out["description"] = desc
    return out


def _strict_node(s: dict[str, Any]) -> dict[str, Any]:
    for key in _STRICT_DROP:
        s.pop(key, None)
    if "prefixItems" in s:
        raise ToolDefinitionError("strict mode does not allow fixed-length tuples; use a list or a model")
    is_object = s.get("type") == "object" or "properties" in s
    if is_object:
        props: dict[str, Any] = s.get("properties") or {}
        extra = s.get("additionalProperties")
        if not props and extra not in (None, False):
            raise ToolDefinitionError(
                "strict mode does not allow free-form objects (dict parameters); "
                "use a model or dataclass with named fields"
            )
        required = set(s.get("required") or [])
        s["properties"] = {
            k: (v if k in required else _nullable(v)) for k, v in props.items()
        }
        s["required"] = list(props)
        s["additionalProperties"] = False
    return s


def to_strict(parameters: dict[str, Any]) -> dict[str, Any]:
    """A copy of `parameters` valid under OpenAI's strict mode.

    Every object lists all its properties as required and forbids others; a property
    that was optional becomes nullable (a `null` from the model means "use the default").
    """
    out = _walk(copy.deepcopy(parameters), _strict_node)
    if out.get("type") != "object":
        raise ToolDefinitionError("strict mode needs an object at the root of parameters")
    return out


# --- validation of a function schema -------------------------------------------------


def validate_function_schema(schema: Any) -> list[str]:
    """Problems with an OpenAI function schema `{"name", "description", "parameters"}`."""
    problems: list[str] = []
    if not isinstance(schema, dict):
        return ["schema must be an object"]
    if "function" in schema and schema.get("type") == "function":
        schema = schema["function"]
        if not isinstance(schema, dict):
            return ["schema.function must be an object"]
    name = schema.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append("schema.name must be a valid identifier of at most 64 characters")
    desc = schema.get("description", "")
    if not isinstance(desc, str) or len(desc) > MAX_DESCRIPTION:
        problems.append(f"schema.description must be a string of at most {MAX_DESCRIPTION} chars")
    params = schema.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(params, dict) or params.get("type") != "object":
        problems.append('schema.parameters must be a JSON schema with "type": "object"')
    else:
        try:
            jsonschema.Draft202012Validator.check_schema(params)
        except jsonschema.SchemaError as exc:
            problems.append(f"schema.parameters is not a valid JSON schema: {exc.message}")
        props = params.get("properties", {})
        if not isinstance(props, dict):
            problems.append("schema.parameters.properties must be an object")
        else:
            missing = [r for r in params.get("required", []) if r not in props]
            if missing:
                problems.append(f"schema.parameters.required names unknown properties: {missing}")
    return problems


def validate_timeout_ms(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ToolDefinitionError("timeout must be an integer number of milliseconds")
    if not MIN_TIMEOUT_MS <= value <= MAX_TIMEOUT_MS:
        raise ToolDefinitionError(
            f"timeout must be between {MIN_TIMEOUT_MS} and {MAX_TIMEOUT_MS} ms, got {value}"
        )
    return value


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ToolDefinitionError(
            f"tool name {name!r} must be a valid identifier (letters, digits, underscore; "
            "not starting with a digit; at most 64 characters)"
        )
    return name


def validate_description(desc: Any, *, name: str) -> str:
    if not isinstance(desc, str) or not desc.strip():
        raise ToolDefinitionError(f"tool {name!r} needs a description (docstring or description=)")
    if len(desc) > MAX_DESCRIPTION:
        raise ToolDefinitionError(
            f"tool {name!r}: description must be at most {MAX_DESCRIPTION} characters, "
            f"got {len(desc)}"
        )
    return desc
