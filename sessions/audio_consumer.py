"""The voice playground's audio socket: `/ws/sessions/{id}/audio/?rate=16000`.

Authenticated like the event socket (login session or `Bearer` API key), but speaking into
a session is acting on it: it needs the control permission (`sessions:control` for keys).
Only live sessions on the local transport take browser audio (a LiveKit session hears its
room); others are refused with 4409.

Client → server: binary frames of PCM16 little-endian mono at `rate` (8000, 16000, 24000
or 48000; 20 ms frames expected, at most `MAX_FRAME_MS`); a frame that is empty, odd-sized
or too long closes the socket with 1009/4400. Audio faster than real time (beyond
`BURST_S` of credit) is dropped, with one `{"type": "warning"}`. Text: `{"type": "ping"}`.

Server → client: `{"type": "ready", "rate": R, "frame_ms": 20}` once; binary frames of
the agent's audio (PCM16 LE mono), each rate announced first by `{"type": "format", "rate":
R}`; `{"type": "clear"}` when the agent was interrupted: drop everything queued.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from channels.db import database_sync_to_async
from django.db import close_old_connections

from sessions.audio_link import LISTENER_HELLO_S, UPLINK_RATES, downlink_group, send_to_session, uplink_sender
from sessions.audio_sender import OrderedSender
from sessions.consumers import CLOSE_BAD_REQUEST, CLOSE_NOT_FOUND, CLOSE_TOO_BIG, AuthorisedConsumer, _query
from sessions.models import LIVE_SESSION_STATUSES, AgentSession

CLOSE_CONFLICT = 4409
FRAME_MS = 20
MAX_FRAME_MS = 100
MAX_TEXT_BYTES = 1024
BURST_S = 1.0  # audio may run this far ahead of real time (network bunching) before drops


@database_sync_to_async
def _session_state(session_id: str) -> tuple[str, str] | None:
    return AgentSession.objects.filter(pk=session_id).values_list("status", "transport").first()


class SessionAudioConsumer(AuthorisedConsumer):
    needs_control = True
    session_id = ""
    rate = 16000
    joined = False
    out_rate: int | None = None
    warned = False
    hello: asyncio.Task[None] | None = None
    uplink: OrderedSender

    async def connect(self) -> None:
        if not await self._admit():
            return
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        try:
            self.rate = int(_query(self.scope).get("rate", "16000"))
        except ValueError:
            self.rate = 0
        if self.rate not in UPLINK_RATES:
            await self._refuse(CLOSE_BAD_REQUEST)
            return
        state = await _session_state(self.session_id)
        if state is None:
            await self._refuse(CLOSE_NOT_FOUND)
            return
        status, transport = state
        if transport != "local" or status not in LIVE_SESSION_STATUSES:
            await self._refuse(CLOSE_CONFLICT)
            return
        await self.channel_layer.group_add(downlink_group(self.session_id), self.channel_name)
        self.uplink = uplink_sender(self.session_id)
        self.joined = True
        await self.accept()
        self.max_frame_bytes = self.rate * MAX_FRAME_MS // 1000 * 2
        self.credit_s = BURST_S
        self.credit_at = time.monotonic()
        # hello before ready: the session hears it before any frame this socket sends
        self._say_hello()
        await self.send_json({"type": "ready", "rate": self.rate, "frame_ms": FRAME_MS})
        self.hello = asyncio.get_running_loop().create_task(self._keep_saying_hello())

    def _say_hello(self, joined: bool = True) -> None:
        send_to_session(self.session_id, {"type": "audio.listener", "channel": self.channel_name, "joined": joined}, self.uplink)

    async def _keep_saying_hello(self) -> None:
        """The session may not have been listening yet, or may have dropped us as silent."""
        while True:
            await asyncio.sleep(LISTENER_HELLO_S)
            self._say_hello()

    async def disconnect(self, code: int) -> None:
        if self.joined:
            if self.hello is not None:
                self.hello.cancel()
            await self.channel_layer.group_discard(downlink_group(self.session_id), self.channel_name)
            self._say_hello(joined=False)
        await database_sync_to_async(close_old_connections)()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None:
            await self._audio_in(bytes_data)
        elif text_data is not None:
            if len(text_data) > MAX_TEXT_BYTES:
                await self.close(code=CLOSE_TOO_BIG)
                return
            try:
                message = json.loads(text_data)
            except ValueError:
                await self.close(code=CLOSE_BAD_REQUEST)
                return
            if isinstance(message, dict) and message.get("type") == "ping":
                await self.send_json({"type": "pong"})

    async def _audio_in(self, pcm: bytes) -> None:
        if len(pcm) > self.max_frame_bytes:
            await self.close(code=CLOSE_TOO_BIG)
            return
        if not pcm or len(pcm) % 2:
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        now = time.monotonic()
        self.credit_s = min(BURST_S, self.credit_s + now - self.credit_at)
        self.credit_at = now
        duration = len(pcm) / 2 / self.rate
        if self.credit_s < duration:
            if not self.warned:
                self.warned = True
                await self.send_json({"type": "warning", "message": "audio arrives faster than real time; frames dropped"})
            return
        self.credit_s -= duration
        send_to_session(self.session_id, {"type": "audio.in", "pcm": pcm, "rate": self.rate}, self.uplink)

    # -- downlink (channel-layer handlers) ---------------------------------------------------
    async def audio_out(self, message: dict[str, Any]) -> None:
        rate = int(message["rate"])
        if rate != self.out_rate:
            self.out_rate = rate
            await self.send_json({"type": "format", "rate": rate})
        await self.send(bytes_data=message["pcm"])

    async def audio_clear(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "clear"})
