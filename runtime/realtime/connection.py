"""The model side of a realtime session: an OpenAI Realtime WebSocket through the SDK.

`RealtimeModel` holds the settings from the agent's `llm_config`; `connect()` opens
`AsyncOpenAI(...).realtime.connect(model=...)` (the SDK derives `ws(s)://…/realtime` from
`base_url`, or uses `websocket_base_url`). `RealtimeLink` is the open connection: one
sender task keeps client events in order, `recv()` hands back raw server events.
"""
from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.provider_configs import Endpoint, OpenAIRealtimeConfig

from ..providers.base import ProviderError
from ..providers.openai import pinned_auth, resolved_key

RATE = 24_000  # the protocol's pcm16 rate


@dataclass(frozen=True, slots=True)
class RealtimeModel:
    model: str = "gpt-realtime"
    voice: str = "alloy"
    temperature: float = 0.8
    base_url: str | None = None
    websocket_base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 30.0
    transcription_model: str | None = "gpt-4o-mini-transcribe"
    sample_rate: int = RATE  # what transports read to size their output track
    endpoint: Endpoint | None = None  # resolved by the control plane: replaces base_url and key

    @classmethod
    def from_config(cls, cfg: OpenAIRealtimeConfig, endpoint: Endpoint | None = None) -> "RealtimeModel":
        return cls(model=cfg.model, voice=cfg.voice, temperature=cfg.temperature,
                   base_url=str(cfg.base_url) if cfg.base_url else None, api_key_env=cfg.api_key_env,
                   timeout_s=cfg.timeout_s, endpoint=endpoint)

    def _client(self) -> Any:
        # imported here: the openai SDK takes about a second to import, and only realtime sessions need it
        from openai import AsyncOpenAI, OpenAIError

        base_url, api_key = resolved_key(self.endpoint, self.base_url, self.api_key_env, "llm")
        # a resolved endpoint's WebSocket URL is derived from its checked base_url, never set apart
        ws_url = None if self.endpoint is not None else self.websocket_base_url
        try:
            return AsyncOpenAI(base_url=base_url, websocket_base_url=ws_url, api_key=api_key,
                               default_headers=pinned_auth(self.endpoint, api_key),
                               timeout=self.timeout_s, max_retries=0)
        except OpenAIError as exc:
            raise ProviderError("llm", str(exc), kind="config") from None

    async def connect(self) -> "RealtimeLink":
        client = self._client()
        manager = client.realtime.connect(model=self.model)
        try:
            conn = await asyncio.wait_for(manager.enter(), self.timeout_s)
        except asyncio.TimeoutError:
            raise ProviderError("llm", f"realtime connect timed out after {self.timeout_s}s", kind="timeout") from None
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - any connect failure is the provider's
            raise ProviderError("llm", f"realtime connect failed: {type(exc).__name__}: {exc}",
                                kind="connection") from None
        return RealtimeLink(conn, client)


class RealtimeLink:
    """An open realtime connection. Client events go through one ordered queue."""

    def __init__(self, conn: Any, client: Any) -> None:
        self.conn = conn
        self._client = client
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self.closed = False
        self.sent = 0

    def start(self, on_error: Any) -> asyncio.Task[None]:
        self._sender = asyncio.get_running_loop().create_task(self._send_loop(on_error), name="realtime-sender")
        return self._sender

    async def _send_loop(self, on_error: Any) -> None:
        conn = self.conn
        while True:
            item = await self._outbox.get()
            try:
                if isinstance(item, str):
                    await conn.send_raw(item)  # pre-encoded (audio appends): skip the param transform
                else:
                    await conn.send(item)
                self.sent += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                on_error(exc)
                return

    # -- client events (synchronous: queued for the sender) -------------------------------------
    def send(self, event: dict[str, Any]) -> None:
        if not self.closed:
            self._outbox.put_nowait(event)

    def append_audio(self, pcm: np.ndarray) -> None:
        if not self.closed:
            b64 = base64.b64encode(pcm.astype("<i2", copy=False).tobytes()).decode("ascii")
            self._outbox.put_nowait('{"type":"input_audio_buffer.append","audio":"' + b64 + '"}')

    def session_update(self, session: dict[str, Any]) -> None:
        self.send({"type": "session.update", "session": session})

    def commit(self) -> None:
        self.send({"type": "input_audio_buffer.commit"})

    def clear_input(self) -> None:
        self.send({"type": "input_audio_buffer.clear"})

    def response_create(self, response: dict[str, Any] | None = None) -> None:
        self.send({"type": "response.create", **({"response": response} if response else {})})

    def response_cancel(self, response_id: str | None = None) -> None:
        self.send({"type": "response.cancel", **({"response_id": response_id} if response_id else {})})

    def truncate(self, item_id: str, audio_end_ms: int, content_index: int = 0) -> None:
        self.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": content_index,
                   "audio_end_ms": audio_end_ms})

    def item_create(self, item: dict[str, Any]) -> None:
        self.send({"type": "conversation.item.create", "item": item})

    # -- server events ---------------------------------------------------------------------------
    async def recv(self) -> bytes:
        return await self.conn.recv_bytes()  # type: ignore[no-any-return]

    def parse(self, raw: bytes | str) -> Any:
        """The SDK's typed server event (for in-process listeners)."""
        return self.conn.parse_event(raw)

    async def aclose(self, timeout: float = 2.0) -> None:
        if self.closed:
            return
        self.closed = True
        # let queued client events (a final truncate, a cancel) go out first, briefly
        if self._sender is not None and not self._sender.done():
            deadline = asyncio.get_running_loop().time() + 0.5
            while not self._outbox.empty() and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            self._sender.cancel()
            await asyncio.wait({self._sender}, timeout=timeout)
        try:
            await asyncio.wait_for(self.conn.close(), timeout)
        except Exception:  # noqa: BLE001 - closing a dead socket is fine
            pass
        try:
            await asyncio.wait_for(self._client.close(), timeout)
        except Exception:  # noqa: BLE001
            pass


def tool_schemas(chat_schemas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat-completions tool schemas → the realtime session's flat function tools."""
    out = []
    for s in chat_schemas:
        fn = s.get("function", s) if s.get("type") == "function" else s
        out.append({"type": "function", "name": fn["name"], "description": fn.get("description", ""),
                    "parameters": fn.get("parameters") or {"type": "object", "properties": {}}})
    return out


def decode_audio(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype="<i2").astype(np.int16, copy=False)


def dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))
