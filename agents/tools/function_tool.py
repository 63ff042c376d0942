"""The `@function_tool` decorator and the FunctionTool object it returns."""
from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import inspect
import json
import threading
import typing
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from typing import Any, Callable, Literal, TypeVar, overload

import jsonschema
import pydantic
from django.conf import settings

from .context import RunContext
from .errors import ToolArgumentsError, ToolDefinitionError
from .registry import registry
from .schema import (
    Signature,
    build_signature,
    is_context_type,
    to_strict,
    validate_description,
    validate_function_schema,
    validate_name,
    validate_timeout_ms,
)

Execution = Literal["inline", "celery"]
EXECUTIONS = ("inline", "celery")
DEFAULT_TIMEOUT_MS = 30_000

F = TypeVar("F", bound=Callable[..., Any])


def parse_arguments_json(raw: str | bytes | dict[str, Any] | None) -> dict[str, Any]:
    """The model's raw argument string as a dict; raises ToolArgumentsError readably."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    text = raw.decode() if isinstance(raw, bytes) else raw
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolArgumentsError(
            f"arguments are not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "send a JSON object"
        ) from None
    if not isinstance(value, dict):
        raise ToolArgumentsError(
            f"arguments must be a JSON object, got {type(value).__name__}"
        )
    return value


def drop_optional_nulls(value: Any, schema: dict[str, Any]) -> Any:
    """Remove `null`s the strict schema allowed for properties that are optional.

    In strict mode an optional property is required-but-nullable; `null` there means
    "not given", so the Python default applies.
    """
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        props = schema["properties"]
        required = set(schema.get("required") or ())
        out = {}
        for k, v in value.items():
            sub = props.get(k)
            if v is None and k not in required and sub is not None and not _allows_null(sub):
                continue
            out[k] = drop_optional_nulls(v, sub) if isinstance(sub, dict) else v
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [drop_optional_nulls(v, schema["items"]) for v in value]
    if isinstance(schema.get("anyOf"), list) and isinstance(value, dict):
        for sub in schema["anyOf"]:
            if isinstance(sub, dict) and sub.get("type") == "object":
                return drop_optional_nulls(value, sub)
    return value


def _allows_null(s: dict[str, Any]) -> bool:
    t = s.get("type")
    if t == "null" or (isinstance(t, list) and "null" in t):
        return True
    return any(isinstance(x, dict) and _allows_null(x) for x in s.get("anyOf", ()))


def format_pydantic_error(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(arguments)"
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unexpected argument"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def to_output(value: Any) -> str:
    """What the model sees for a tool's return value."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    if isinstance(value, Enum):
        return str(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, (dict, list, tuple, int, float, bool)):
        try:
            return json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            pass
    return str(value)


class FunctionTool:
    """A Python function exposed to the model. Calling it calls the plain function."""

    kind = "python"

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        timeout_ms: int | None = None,
        execution: Execution | None = None,
        metadata: dict[str, Any] | None = None,
        raw_schema: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(fn, FunctionTool):
            fn = fn.fn
        if not callable(fn):
            raise ToolDefinitionError("function_tool needs a function")
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.module = getattr(fn, "__module__", "") or ""
        self.function = getattr(fn, "__qualname__", getattr(fn, "__name__", "")) or ""
        if timeout is not None and timeout_ms is not None:
            raise ToolDefinitionError("give timeout (seconds) or timeout_ms, not both")
        if timeout is not None:
            timeout_ms = int(round(float(timeout) * 1000))
        self.timeout_ms: int | None = (
            validate_timeout_ms(timeout_ms) if timeout_ms is not None else None
        )
        if execution is not None and execution not in EXECUTIONS:
            raise ToolDefinitionError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
        self.execution: Execution | None = execution
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._strict_cache: dict[str, Any] | None = None
        self.is_raw = raw_schema is not None
        if raw_schema is not None:
            self._init_raw(raw_schema, name=name, description=description)
        else:
            self._init_signature(name=name, description=description)

    # -- construction ---------------------------------------------------------------

    def _init_signature(self, *, name: str | None, description: str | None) -> None:
        tool_name = validate_name(name or getattr(self.fn, "__name__", ""))
        sig: Signature = build_signature(self.fn, tool_name=tool_name)
        self.name = tool_name
        self.description = validate_description(description or sig.description, name=tool_name)
        self.signature: Signature | None = sig
        self.parameters = sig.parameters
        self.context_param = sig.context_param
        self.param_names = sig.param_names
        self.arity = len(sig.param_names)
        self.return_type = sig.return_type
        self._validator: Any = None

    def _init_raw(
        self, raw_schema: dict[str, Any], *, name: str | None, description: str | None
    ) -> None:
        schema = raw_schema.get("function", raw_schema) if raw_schema.get("type") == "function" else raw_schema
        schema = {
            "name": name or schema.get("name") or getattr(self.fn, "__name__", ""),
            "description": description or schema.get("description", ""),
            "parameters": schema.get("parameters") or {"type": "object", "properties": {}},
        }
        problems = validate_function_schema(schema)
        if problems:
            raise ToolDefinitionError(f"raw tool {schema['name']!r}: " + "; ".join(problems))
        self.name = validate_name(schema["name"])
        self.description = validate_description(schema["description"], name=self.name)
        self.signature = None
        self.parameters = schema["parameters"]
        try:
            hints = typing.get_type_hints(self.fn)
        except Exception as exc:
            raise ToolDefinitionError(f"raw tool {self.name!r}: cannot resolve type hints: {exc}") from exc
        self.context_param = next((p for p, h in hints.items() if p != "return" and is_context_type(h)), None)
        self.param_names = tuple(self.parameters.get("properties", {}))
        self.arity = len(self.param_names)
        self.return_type = ""
        self._validator = jsonschema.Draft202012Validator(self.parameters)

    # -- the plain function ---------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<FunctionTool {self.name} ({self.module}.{self.function})>"

    # -- schema ---------------------------------------------------------------------

    def function_schema(self, strict: bool = False) -> dict[str, Any]:
        """`{"name", "description", "parameters"}` (the form stored on the Tool row)."""
        params = self.strict_parameters() if strict else self.parameters
        return {"name": self.name, "description": self.description, "parameters": params}

    def strict_parameters(self) -> dict[str, Any]:
        if self._strict_cache is None:
            self._strict_cache = to_strict(self.parameters)
        return self._strict_cache

    def openai_schema(self, strict: bool = False) -> dict[str, Any]:
        fn = self.function_schema(strict=strict)
        if strict:
            fn["strict"] = True
        return {"type": "function", "function": fn}

    @property
    def effective_timeout_ms(self) -> int:
        return self.timeout_ms or DEFAULT_TIMEOUT_MS

    # -- execution --------------------------------------------------------------------

    def parse_arguments(self, raw: str | bytes | dict[str, Any] | None) -> dict[str, Any]:
        """Parse, validate and convert arguments to the declared Python types."""
        data = drop_optional_nulls(parse_arguments_json(raw), self.parameters)
        if self.signature is None:
            errors = sorted(self._validator.iter_errors(data), key=lambda e: list(e.path))
            if errors:
                raise ToolArgumentsError(
                    "; ".join(
                        f"{'.'.join(map(str, e.path)) or '(arguments)'}: {e.message}" for e in errors
                    )
                )
            return data
        try:
            model = self.signature.model.model_validate(data)
        except pydantic.ValidationError as exc:
            raise ToolArgumentsError(format_pydantic_error(exc)) from None
        return {n: getattr(model, n) for n in self.param_names}

    def bind(self, kwargs: dict[str, Any], ctx: RunContext | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if self.signature is None:
            call_kwargs = {self.context_param: ctx} if self.context_param else {}
            return (kwargs,), call_kwargs
        if self.context_param:
            return (), {**kwargs, self.context_param: ctx}
        return (), kwargs

    async def run(self, kwargs: dict[str, Any], ctx: RunContext | None) -> Any:
        """Run in the current event loop (async) or in a thread (sync)."""
        args, call_kwargs = self.bind(kwargs, ctx)
        if self.is_async:
            return await self.fn(*args, **call_kwargs)
        ctx_vars = contextvars.copy_context()
        call = functools.partial(ctx_vars.run, self.fn, *args, **call_kwargs)
        return await asyncio.get_running_loop().run_in_executor(tool_thread_pool(), call)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def tool_thread_pool() -> ThreadPoolExecutor:
    """Threads for sync tools, apart from the loop's default executor (which the runtime
    and asgiref use), so slow sync tools cannot starve them. A sync tool that times out
    keeps its thread until it returns: Python cannot stop a thread."""
    global _POOL
    if _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                size = 32
                try:
                    size = int(getattr(settings, "TOOLS_THREAD_POOL_SIZE", size))
                except Exception:
                    pass
                _POOL = ThreadPoolExecutor(max_workers=size, thread_name_prefix="tool")
    return _POOL


@overload
def function_tool(fn: F, /) -> FunctionTool: ...


@overload
def function_tool(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    timeout_ms: int | None = None,
    execution: Execution | None = None,
    metadata: dict[str, Any] | None = None,
    raw_schema: dict[str, Any] | None = None,
    register: bool = True,
) -> Callable[[F], FunctionTool]: ...


def function_tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    timeout_ms: int | None = None,
    execution: Execution | None = None,
    metadata: dict[str, Any] | None = None,
    raw_schema: dict[str, Any] | None = None,
    register: bool = True,
) -> Any:
    """Turn a function into a tool; bare (`@function_tool`) or with options.

    `timeout` is in seconds (or `timeout_ms` in milliseconds; 1..300,000 ms).
    `execution` picks "inline" (the session's event loop; sync functions in a thread)
    or "celery" (the `tools` queue); None leaves the choice to the Tool row.
    `raw_schema` makes a raw tool: the function receives the arguments dict as is.
    With `register=True` (default) the tool joins the default registry.
    """

    def wrap(f: Callable[..., Any]) -> FunctionTool:
        tool = FunctionTool(
            f,
            name=name,
            description=description,
            timeout=timeout,
            timeout_ms=timeout_ms,
            execution=execution,
            metadata=metadata,
            raw_schema=raw_schema,
        )
        if register:
            registry.register(tool)
        return tool

    if fn is not None:
        return wrap(fn)
    return wrap


def raw_function_tool(
    schema: dict[str, Any], **options: Any
) -> Callable[[Callable[..., Any]], FunctionTool]:
    """A tool from a function plus a hand-written schema.

    The function is called as `fn(arguments)` (plus a RunContext parameter if it has one).
    """
    return function_tool(raw_schema=schema, **options)
