"""The OpenAI REST API over one shared aiohttp session per event loop and endpoint.

The providers (`runtime.providers.openai`) speak the same wire protocol the openai SDK does
(JSON bodies, server-sent events for a streamed chat completion, multipart for a
transcription, raw PCM for speech) but without its per-request machinery: with hundreds
of calls in one worker process the SDK's request building, httpx/httpcore/anyio and the
typed models built for every streamed chunk took a fifth to a quarter of the process's GIL
(bench/capacity.py, py-spy). aiohttp parses HTTP in C and keeps one connection pool.

A timeout bounds the connection (pool wait included) and every read, as the SDK's did: a
stalled server cannot hang a session. Failures become `ProviderError`s with the kinds the
retry loop and the session's error events use (see `classify`).
"""
from __future__ import annotations

import asyncio
import atexit
import json
import os
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from .base import ProviderError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
USER_AGENT = "controlplane-runtime (OpenAI-compatible)"
MAX_CONNECTIONS = 1000  # what the SDK's httpx pool allowed; one pool serves every session of a loop
READ_BUFFER_BYTES = 2**20  # a streamed line (one SSE event: a long tool call's arguments) fits


class OpenAIHTTP:
    """One endpoint (base URL, key, timeout) on one event loop; shared by its sessions."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float,
                 headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT, **(headers or {})}
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_read=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._proxy: tuple[Any, Any] = (None, None)  # (proxy URL, its auth) from the environment

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # HTTP(S)_PROXY / NO_PROXY as httpx (the SDK's transport) honoured them, looked up
            # once per pool: aiohttp's trust_env did it per request, with two thread-pool hops
            # (a netrc read and the proxy lookup, each iterating os.environ) competing with the
            # session loop for the GIL, hundreds of times a second in a busy worker. No netrc:
            # the key is the request's Authorization header (aiohttp refuses both at once).
            self._proxy = env_proxy(self.base_url)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS), headers=self._headers,
                timeout=self._timeout, read_bufsize=READ_BUFFER_BYTES)
        return self._session

    async def post(self, source: str, path: str, *, json_body: Any = None,
                   form: aiohttp.FormData | None = None) -> aiohttp.ClientResponse:
        """The response once its status is a success (the caller reads it, then `release`s
        it); ProviderError for an error status, with the server's own message."""
        session = self._http()
        proxy, proxy_auth = self._proxy
        response = await session.post(self.base_url + path, json=json_body, data=form, proxy=proxy,
                                      proxy_auth=proxy_auth)
        if response.status >= 400:
            try:
                body = await response.read()
            finally:
                response.release()
            raise status_error(source, response.status, body)
        return response

    def close_now(self) -> None:
        """Drop the pool's connections without awaiting (its loop is closed or closing)."""
        session, self._session = self._session, None
        connector = session.connector if session is not None else None
        if connector is not None:
            try:
                connector._close()  # the synchronous part of close(): transports closed, pool marked closed
            except Exception:  # noqa: BLE001 - a loop already closed refuses the callbacks
                pass


def env_proxy(url: str) -> tuple[Any, Any]:
    """(proxy URL, proxy auth) the environment gives `url` (HTTP_PROXY, HTTPS_PROXY, NO_PROXY,
    as aiohttp's trust_env reads them), or (None, None)."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        return get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None


# Per event loop (an aiohttp session is bound to its loop). A session refers to its loop, so
# entries of loops that have closed are dropped by hand (a weak key alone would never go).
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, float], OpenAIHTTP]]" = (
    weakref.WeakKeyDictionary())


def shared_client(base_url: str | None, api_key: str | None, timeout_s: float, source: str,
                  headers: dict[str, str] | None = None) -> OpenAIHTTP:
    """The loop's client for this endpoint. Without a base URL or key, OPENAI_BASE_URL and
    OPENAI_API_KEY apply (as the SDK read them); no key at all is a config error."""
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    api_key = api_key or os.environ.get("OPENAI_API_KEY")
    if not api_key:
        raise ProviderError(source, "no API key: set OPENAI_API_KEY or the config's api_key_env", kind="config")
    _drop_clients(lambda loop: loop.is_closed())
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (base_url, api_key, timeout_s)
    client = per_loop.get(key)
    if client is None:
        client = per_loop[key] = OpenAIHTTP(base_url, api_key, timeout_s, headers)
    return client


def _drop_clients(which: Callable[[asyncio.AbstractEventLoop], bool]) -> None:
    for loop in [loop for loop in list(_clients) if which(loop)]:
        for client in _clients.pop(loop).values():
            client.close_now()


# at exit, pools still open close quietly (else each connector's __del__ logs "Unclosed connector")
atexit.register(_drop_clients, lambda loop: True)


def status_error(source: str, status: int, body: bytes) -> ProviderError:
    message = body[:200].decode("utf-8", "replace")
    try:
        error = json.loads(body).get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
    except (ValueError, AttributeError):
        pass
    return ProviderError(source, f"HTTP {status}: {message}", kind="status",
                         retryable=status in (408, 409, 429) or status >= 500)


def classify(source: str, exc: BaseException) -> ProviderError:
    """Any failure of a request or of reading its response → the ProviderError to raise."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, TimeoutError):  # asyncio's, and aiohttp's connect / read timeouts
        return ProviderError(source, f"timed out: {exc}" if str(exc) else "timed out", kind="timeout", retryable=True)
    if isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError)):
        return ProviderError(source, f"connection failed: {type(exc).__name__}: {exc}", kind="connection",
                             retryable=True)
    if isinstance(exc, (ValueError, TypeError, KeyError, AttributeError, IndexError)):  # JSONDecodeError is a ValueError
        return ProviderError(source, f"malformed response: {exc}", kind="garbage")
    return ProviderError(source, f"{type(exc).__name__}: {exc}")


async def sse_json(source: str, response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The JSON objects of a server-sent event stream, until `data: [DONE]` or its end.
    An event carrying `error` (the server failed mid-stream) raises it."""
    data: list[str] = []
    async for raw in response.content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
            continue
        if line or not data:
            continue  # event:, id:, comments; a blank line with nothing pending
        payload, data = "\n".join(data), []
        if payload == "[DONE]":
            return
        obj = json.loads(payload)
        if not isinstance(obj, dict):
            raise TypeError(f"a stream event is not an object: {payload[:80]!r}")
        error = obj.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise ProviderError(source, f"error in stream: {message}", kind="status")
        yield obj
