"""HTTP tools: a tool that is an HTTP endpoint, configured without code.

The request (POST/PUT/PATCH) carries a JSON body:
`{"call_id", "tool", "arguments", "session_id", "agent_id", "execution_id"}`;
GET/DELETE send the same fields as query parameters (`arguments` as JSON text), after
the query configured in the URL.
A 2xx response's body is what the model sees (a JSON object's `"output"` member if it
has one); bodies over TOOLS_HTTP_MAX_RESPONSE_BYTES are refused while streaming. The
address guard (`address_guard.py`) resolves the host and refuses private, loopback,
link-local and other non-public addresses unless TOOLS_ALLOW_PRIVATE_ADDRESSES; the
request then goes to the address that was checked (no second DNS lookup), and
redirects are not followed. Header secrets go only where `egress.py` allows.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
import jsonschema
from django.conf import settings

from .address_guard import AddressNotAllowed, is_public_address, resolve_checked
from .context import RunContext
from .egress import Secret
from .errors import ToolArgumentsError, ToolDefinitionError, ToolError
from .function_tool import drop_optional_nulls, parse_arguments_json
from .log_redaction import install as install_log_redaction
from .schema import (
    to_strict,
    validate_description,
    validate_function_schema,
    validate_name,
    validate_timeout_ms,
)
from .secrets import resolve_headers

__all__ = ["AddressNotAllowed", "HttpTool", "is_public_address", "resolve_checked"]

logger = logging.getLogger("agents.tools")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_OUTPUT_CHARS = 16_000
DEFAULT_TIMEOUT_MS = 30_000
DEFAULT_MAX_RESPONSE_BYTES = 1_048_576


def allow_private_default() -> bool:
    try:
        return bool(getattr(settings, "TOOLS_ALLOW_PRIVATE_ADDRESSES", False))
    except Exception:  # settings not configured (the tools package used alone)
        return False


def max_response_bytes() -> int:
    try:
        return int(getattr(settings, "TOOLS_HTTP_MAX_RESPONSE_BYTES", DEFAULT_MAX_RESPONSE_BYTES))
    except Exception:  # settings not configured
        return DEFAULT_MAX_RESPONSE_BYTES


# at import, so any process that can call an HTTP tool logs its URLs without their query
install_log_redaction()


async def pinned_target(url: str, *, allow_private: bool) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Check `url`'s host with the address guard and aim at the address that was checked.

    Returns (the URL with the checked IP as its host, the `Host` header, httpx request
    extensions carrying TLS SNI), so a second DNS answer cannot redirect the request.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ip = await resolve_checked(host, port, allow_private=allow_private)
    ip_host = f"[{ip}]" if ":" in ip else ip
    netloc = f"{ip_host}:{parts.port}" if parts.port else ip_host
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
    return pinned, {"Host": parts.netloc.rsplit("@", 1)[-1]}, extensions


class HttpTool:
    kind = "http"

    def __init__(
        self,
        *,
        name: str,
        description: str,
        url: str,
        method: str = "POST",
        headers: dict[str, Any] | None = None,
        parameters: dict[str, Any] | None = None,
        timeout_ms: int | None = None,
        retries: int = 0,
        execution: str | None = None,
        metadata: dict[str, Any] | None = None,
        allow_private: bool | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        credentials: dict[str, Secret] | None = None,
    ) -> None:
        self.name = validate_name(name)
        self.description = validate_description(description, name=name)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ToolDefinitionError(f"HTTP tool {name!r}: url must be an http(s) URL with a host")
        self.url = url
        method = method.upper()
        if method not in METHODS:
            raise ToolDefinitionError(f"HTTP tool {name!r}: method must be one of {METHODS}")
        self.method = method
        self.headers = dict(headers or {})
        self.parameters = parameters or {"type": "object", "properties": {}}
        problems = validate_function_schema(
            {"name": name, "description": description, "parameters": self.parameters}
        )
        if problems:
            raise ToolDefinitionError(f"HTTP tool {name!r}: " + "; ".join(problems))
        self.timeout_ms = validate_timeout_ms(timeout_ms) if timeout_ms is not None else None
        if not isinstance(retries, int) or not 0 <= retries <= 10:
            raise ToolDefinitionError(f"HTTP tool {name!r}: retries must be 0..10")
        self.retries = retries
        self.execution = execution
        self.metadata = dict(metadata or {})
        self.allow_private = allow_private
        self.transport = transport
        self.credentials = dict(credentials or {})  # the named credentials its headers reference
        self.module = ""
        self.function = ""
        self.arity = len(self.parameters.get("properties", {}))
        self.return_type = "str"
        self.context_param = None
        self._strict: dict[str, Any] | None = None
        self._validator = jsonschema.Draft202012Validator(self.parameters)

    @classmethod
    def from_row(cls, row: Any, **kwargs: Any) -> "HttpTool":
        """From a Tool row; pass `credentials` (name → Secret) for the ones its headers name."""
        fn = row.schema.get("function", row.schema) if isinstance(row.schema, dict) else {}
        return cls(
            name=row.name,
            description=row.description,
            url=row.http_url,
            method=row.http_method or "POST",
            headers=row.http_headers,
            parameters=fn.get("parameters"),
            timeout_ms=row.timeout_ms,
            retries=row.http_retries,
            execution=row.execution,
            metadata=row.metadata,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"<HttpTool {self.name} {self.method} {urlsplit(self.url).hostname}>"

    def function_schema(self, strict: bool = False) -> dict[str, Any]:
        params = self.strict_parameters() if strict else self.parameters
        return {"name": self.name, "description": self.description, "parameters": params}

    def strict_parameters(self) -> dict[str, Any]:
        if self._strict is None:
            self._strict = to_strict(self.parameters)
        return self._strict

    def openai_schema(self, strict: bool = False) -> dict[str, Any]:
        fn = self.function_schema(strict)
        if strict:
            fn["strict"] = True
        return {"type": "function", "function": fn}

    def parse_arguments(self, raw: Any) -> dict[str, Any]:
        data = drop_optional_nulls(parse_arguments_json(raw), self.parameters)
        errors = sorted(self._validator.iter_errors(data), key=lambda e: list(e.path))
        if errors:
            raise ToolArgumentsError(
                "; ".join(f"{'.'.join(map(str, e.path)) or '(arguments)'}: {e.message}" for e in errors)
            )
        return data

    # -- the call -----------------------------------------------------------------------

    def payload(self, kwargs: dict[str, Any], ctx: RunContext | None) -> dict[str, Any]:
        return {
            "call_id": ctx.call_id if ctx else "",
            "tool": self.name,
            "arguments": kwargs,
            "session_id": ctx.session_id if ctx else "",
            "agent_id": ctx.agent_id if ctx else "",
            "execution_id": ctx.execution_id if ctx else "",
        }

    async def run(self, kwargs: dict[str, Any], ctx: RunContext | None) -> str:
        parts = urlsplit(self.url)
        # secrets first: a credential bound elsewhere fails before anything is resolved or sent
        headers = resolve_headers(self.headers, host=parts.hostname or "", credentials=self.credentials)
        allow = self.allow_private if self.allow_private is not None else allow_private_default()
        # Connect to the address we checked; keep Host and TLS SNI on the real name.
        pinned, host_header, extensions = await pinned_target(self.url, allow_private=allow)
        headers.update(host_header)
        headers.setdefault("User-Agent", "controlplane-tools/1")
        body = self.payload(kwargs, ctx)
        request_kwargs: dict[str, Any] = {"headers": headers, "extensions": extensions}
        if self.method in ("GET", "DELETE"):
            # httpx's `params` replaces a URL's query: send the configured one, then the call's
            configured = parse_qsl(parts.query, keep_blank_values=True)
            request_kwargs["params"] = [*configured, *{**body, "arguments": json.dumps(kwargs)}.items()]
            pinned = urlunsplit(urlsplit(pinned)._replace(query=""))
        else:
            request_kwargs["json"] = body
        timeout_s = (self.timeout_ms or DEFAULT_TIMEOUT_MS) / 1000.0
        attempt = 0
        async with httpx.AsyncClient(
            timeout=timeout_s, follow_redirects=False, transport=self.transport, trust_env=False
        ) as client:
            while True:
                try:
                    status, content_type, raw = await self._send(client, pinned, request_kwargs)
                except httpx.HTTPError as exc:
                    if attempt < self.retries:
                        attempt += 1
                        await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
                        continue
                    logger.warning("HTTP tool %s: request failed: %s", self.name, type(exc).__name__)
                    raise ToolError("the tool's service could not be reached") from None
                if status >= 500 and attempt < self.retries:
                    attempt += 1
                    await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
                    continue
                return self._output(status, content_type, raw)

    async def _send(self, client: httpx.AsyncClient, url: str,
                    request_kwargs: dict[str, Any]) -> tuple[int, str, bytes]:
        """Stream the answer, stopping at TOOLS_HTTP_MAX_RESPONSE_BYTES: a tool's service
        cannot make the worker (which hosts every session on it) hold an unbounded body."""
        limit = max_response_bytes()
        async with client.stream(self.method, url, **request_kwargs) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise ToolError(self._too_large(limit))
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise ToolError(self._too_large(limit))
                chunks.append(chunk)
            return response.status_code, response.headers.get("content-type", ""), b"".join(chunks)

    def _too_large(self, limit: int) -> str:
        logger.warning("HTTP tool %s: answer over %d bytes refused", self.name, limit)
        return f"the tool's service answered with more than {limit} bytes (TOOLS_HTTP_MAX_RESPONSE_BYTES)"

    def _output(self, status: int, content_type: str, raw: bytes) -> str:
        text = raw.decode("utf-8", errors="replace")[:MAX_OUTPUT_CHARS]
        if 300 <= status < 400:
            raise ToolError(f"the tool's service answered with a redirect ({status})")
        if status >= 400:
            detail = text[:500] if status < 500 else ""
            raise ToolError(f"the tool's service answered {status}" + (f": {detail}" if detail else ""))
        if "json" in content_type:
            try:
                data = json.loads(raw)
            except ValueError:
                return text
            if isinstance(data, dict) and "output" in data:
                out = data["output"]
                return out if isinstance(out, str) else json.dumps(out)
        return text
