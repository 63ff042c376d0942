"""WebSocket consumers: one session's event stream, and the fleet's status changes.

Frames sent to the client (JSON):
  `{"type": "events", "events": [envelope, ...]}`  envelopes in seq order, never repeated
  `{"type": "replay_done", "last_seq": N}`         stored events after `after_seq` all sent
  `{"type": "fleet", "kind": ..., "at": ..., "data": {...}}`  on `/ws/fleet/`

Frames from the client: JSON text, at most WS_MAX_MESSAGE_BYTES (`{"type": "ping"}` on a
session stream). Anything else gets `{"type": "error", "error": ...}` and the socket closes.

Close codes: 4400 bad request (also a frame that is not JSON text), 4401 unauthenticated
(also when the credential stops being valid: a revoked key, a logged-out or deactivated
user; re-checked every WS_AUTH_RECHECK_SECONDS), 4403 forbidden, 4404 unknown session or
path, 1009 a frame over WS_MAX_MESSAGE_BYTES.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

from importlib import import_module

from channels.auth import get_user
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.conf import settings
from django.db import close_old_connections

from controlplane.broadcaster import register_layer_loop
from controlplane.fleet_events import FLEET_GROUP
from controlplane.models import ApiKey
from sessions.access import key_can_control, key_can_watch, user_can_control, user_can_watch
from sessions.event_sink import session_group
from sessions.models import AgentSession, SessionEvent

log = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_BIG = 1009  # RFC 6455: message too big
REPLAY_CHUNK = 500


def _query(scope: dict[str, Any]) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[-1] for k, v in parse_qs(raw).items()}


def _bearer(scope: dict[str, Any]) -> str:
    token = _query(scope).get("token", "")
    if token:
        return token
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            parts = value.decode("latin-1").split()
            if len(parts) == 2 and parts[0] == "Bearer":
                return parts[1]
    return ""


@database_sync_to_async
def _authorise(scope: dict[str, Any], control: bool = False) -> int | None:
    """None when the client may watch (with `control`: act on) sessions; else the close code."""
    token = _bearer(scope)
    if token:
        key = ApiKey.authenticate(token)
        if key is None:
            return CLOSE_UNAUTHENTICATED
        scope["api_key"] = key
        return None if (key_can_control if control else key_can_watch)(key) else CLOSE_FORBIDDEN
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return CLOSE_UNAUTHENTICATED
    return None if (user_can_control if control else user_can_watch)(user) else CLOSE_FORBIDDEN


@database_sync_to_async
def _key_still_allowed(key: ApiKey, control: bool) -> int | None:
    fresh = ApiKey.objects.filter(pk=key.pk).first()
    if fresh is None or not fresh.is_active:
        return CLOSE_UNAUTHENTICATED
    return None if (key_can_control if control else key_can_watch)(fresh) else CLOSE_FORBIDDEN


async def _reauthorise(scope: dict[str, Any], control: bool = False) -> int | None:
    """The connect-time check again, from the database rather than what connect loaded."""
    key = scope.get("api_key")
    if key is not None:
        return await _key_still_allowed(key, control)
    session_key = getattr(scope.get("session"), "session_key", None)
    if not session_key:
        return CLOSE_UNAUTHENTICATED
    # A fresh store: logout deleted the session row; get_user also drops a deactivated user
    # and a session whose password hash no longer matches.
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    user = await get_user({"session": store})
    if not user.is_authenticated:
        return CLOSE_UNAUTHENTICATED
    allowed = user_can_control if control else user_can_watch
    return None if await database_sync_to_async(allowed)(user) else CLOSE_FORBIDDEN


@database_sync_to_async
def _session_exists(session_id: str) -> bool:
    return AgentSession.objects.filter(pk=session_id).exists()


@database_sync_to_async
def _stored_events(session_id: str, after: int, upto: int | None = None, limit: int = REPLAY_CHUNK) -> list[dict[str, Any]]:
    rows = SessionEvent.objects.filter(session_id=session_id, seq__gt=after)
    if upto is not None:
        rows = rows.filter(seq__lt=upto)
    return [row.envelope() for row in rows.order_by("seq")[:limit]]


# Messages handled without channels' per-message `aclose_old_connections()`: live events,
# fleet changes, client frames and a call's audio (sessions.audio_consumer), whose handlers touch the database only through
# `database_sync_to_async` (which closes old connections around each call itself). That
# hop is a trip through asgiref's ONE thread-sensitive executor thread per message, for
# every consumer of the process in turn: with hundreds of watched sessions it was a fifth
# of the web process's time and a queue that made live events seconds late
# (bench/capacity.py: event → WebSocket p99 1.1 s at 100 calls, 8 s at 200).
NO_DB_HOP_MESSAGES = frozenset({"session.events", "fleet.event", "websocket.receive", "audio.out", "audio.clear"})


class AuthorisedConsumer(AsyncJsonWebsocketConsumer):
    needs_control = False  # watching is enough; a consumer that acts on a session says so
    _credential_watch: asyncio.Task[None] | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") in NO_DB_HOP_MESSAGES:
            handler = getattr(self, get_handler_name(message), None)
            if handler is not None:
                await handler(message)
                return
        await super().dispatch(message)  # connect, disconnect: with the connection clean-up

    async def _admit(self) -> bool:
        register_layer_loop(asyncio.get_running_loop())
        code = await _authorise(self.scope, self.needs_control)
        if code is not None:
            await self._refuse(code)
            return False
        self._credential_watch = asyncio.create_task(self._watch_credential())
        return True

    async def _refuse(self, code: int) -> None:
        # A close code only reaches the client after the handshake, so accept first.
        await self.accept()
        await self.close(code=code)

    async def _watch_credential(self) -> None:
        """Close the socket once its key is revoked or its user logged out or deactivated."""
        while True:
            await asyncio.sleep(settings.WS_AUTH_RECHECK_SECONDS)
            code = await _reauthorise(self.scope, self.needs_control)
            if code is not None:
                log.info("closing %s: its credential is no longer valid (%s)", self.scope.get("path"), code)
                await self.close(code=code)
                return

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self._credential_watch is not None:
            self._credential_watch.cancel()
        await super().websocket_disconnect(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.WS_MAX_MESSAGE_BYTES:
            await self._reject_frame(f"frames may be at most {settings.WS_MAX_MESSAGE_BYTES} bytes", CLOSE_TOO_BIG)
            return
        if text_data is None:
            await self._reject_frame("binary frames are not accepted: send JSON text, e.g. {\"type\": \"ping\"}")
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            await self._reject_frame("frames must be JSON text, e.g. {\"type\": \"ping\"}")
            return
        await self.receive_json(content, **kwargs)

    async def _reject_frame(self, error: str, code: int = CLOSE_BAD_REQUEST) -> None:
        await self.send_json({"type": "error", "error": error})
        await self.close(code=code)


class SessionConsumer(AuthorisedConsumer):
    """Replays stored events after `after_seq`, then streams live ones, without gap or repeat.

    The group is joined before the replay; live messages that arrive meanwhile wait in this
    channel's queue (a consumer handles one message at a time) and are then trimmed to what
    the replay did not send. A live batch that starts beyond the next expected seq (a lost
    broadcast, or two writers racing) is filled in from the database, where every broadcast
    event is committed before it is sent.
    """

    session_id = ""
    last_seq = 0
    joined = False

    async def connect(self) -> None:
        if not await self._admit():
            return
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        try:
            self.last_seq = max(0, int(_query(self.scope).get("after_seq", "0") or 0))
        except ValueError:
            await self._refuse(CLOSE_BAD_REQUEST)
            return
        if not await _session_exists(self.session_id):
            await self._refuse(CLOSE_NOT_FOUND)
            return
        await self.channel_layer.group_add(session_group(self.session_id), self.channel_name)
        self.joined = True
        await self.accept()
        await self._send_stored(upto=None)
        await self.send_json({"type": "replay_done", "last_seq": self.last_seq})

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(session_group(self.session_id), self.channel_name)
        await database_sync_to_async(close_old_connections)()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The stream is one-way; operator actions go through CSRF-protected HTTP views.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "last_seq": self.last_seq})

    async def session_events(self, message: dict[str, Any]) -> None:
        events = [e for e in message["events"] if e["seq"] > self.last_seq]
        if not events:
            return
        if events[0]["seq"] > self.last_seq + 1:
            await self._send_stored(upto=events[0]["seq"])
            events = [e for e in events if e["seq"] > self.last_seq]
        await self._send_events(events)

    async def _send_stored(self, upto: int | None) -> None:
        while True:
            chunk = await _stored_events(self.session_id, self.last_seq, upto)
            if not chunk:
                return
            await self._send_events(chunk)
            if len(chunk) < REPLAY_CHUNK:
                return

    async def _send_events(self, events: list[dict[str, Any]]) -> None:
        if events:
            await self.send_json({"type": "events", "events": events})
            self.last_seq = events[-1]["seq"]


class FleetConsumer(AuthorisedConsumer):
    """Job, worker and session status changes, as `controlplane.fleet_events` publishes them
    (job and session events from their state machines' transitions)."""

    joined = False

    async def connect(self) -> None:
        if not await self._admit():
            return
        await self.channel_layer.group_add(FLEET_GROUP, self.channel_name)
        self.joined = True
        await self.accept()  # after joining: an open socket misses nothing

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(FLEET_GROUP, self.channel_name)
        await database_sync_to_async(close_old_connections)()

    async def fleet_event(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "fleet", "kind": message["kind"], "at": message["at"], "data": message["data"]})


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: a clean 4404 instead of an exception in the router."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)
