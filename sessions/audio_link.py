"""Browser audio to and from a session on the local transport, wherever the session runs.

Uplink (browser → session): the audio socket (`sessions.audio_consumer`) hands each PCM16
frame to `send_to_session`. A session hosted by this very process (the embedded mode) gets
it straight on its own loop; any other goes through the channel-layer group
`session-audio-in-<id>`, where the hosting worker's `AudioLink` listens.

Downlink (session → browser): the session's LocalTransport gives `AudioLink` every paced
output frame and every clear (the agent was interrupted); they go, in order, to the group
`session-audio-<id>`, which each open audio socket of the session joins. The in-memory
layer (embedded mode) lives on the web server's loop, so its sends are made there;
channels-redis is used from the session's own loop. Both directions go through an
`OrderedSender` (`sessions.audio_sender`): in order, never blocking, and frames that pile
up behind a slow layer travel together instead of being dropped.

A link sends nothing until a socket says hello (and keeps saying it, see
`LISTENER_TTL_S`), so a local session nobody listens to costs no channel-layer traffic.

Channel-layer messages (binary PCM as bytes: msgpack and the in-memory layer carry them):
  uplink    {"type": "audio.in", "pcm": <int16 LE mono>, "rate": 16000}
            {"type": "audio.listener", "channel": <socket channel>, "joined": bool}
  downlink  {"type": "audio.out", "pcm": <int16 LE mono>, "rate": 24000}
            {"type": "audio.clear"}
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import numpy as np
from channels.layers import InMemoryChannelLayer, get_channel_layer

from controlplane.broadcaster import registered_layer_loop
from sessions.audio_sender import OrderedSender
from runtime.events import ParticipantInfo
from runtime.transports.local import LocalTransport

log = logging.getLogger(__name__)

UPLINK_RATES = (8000, 16000, 24000, 48000)
LISTENER_TTL_S = 10.0  # a socket repeats its hello every LISTENER_HELLO_S; silent ones expire
LISTENER_HELLO_S = 2.0

_links_lock = threading.Lock()
_links: dict[str, AudioLink] = {}


def downlink_group(session_id: str) -> str:
    return f"session-audio-{session_id}"


def uplink_group(session_id: str) -> str:
    return f"session-audio-in-{session_id}"


def hosted_here(session_id: str) -> AudioLink | None:
    """The link of a session this process hosts (the embedded mode), if any."""
    with _links_lock:
        return _links.get(session_id)


def uplink_sender(session_id: str) -> OrderedSender:
    """For a socket whose session runs elsewhere: its uplink over the layer, from the caller's loop."""
    loop = asyncio.get_running_loop()
    return OrderedSender(uplink_group(session_id), audio_type="audio.in", target=lambda: loop, layer=get_channel_layer)


def send_to_session(session_id: str, message: dict[str, Any], sender: OrderedSender) -> None:
    """An uplink message (audio.in / audio.listener) to the session, wherever it runs. Never waits."""
    link = hosted_here(session_id)
    if link is not None:
        link.post(message)
    else:
        sender.put(message)


class AudioLink:
    """The worker side of one session's browser audio: its LocalTransport, the uplink it
    feeds into the session, and the ordered downlink of the agent's frames."""

    def __init__(self, session_id: str, *, participant: ParticipantInfo | None = None) -> None:
        self.session_id = session_id
        self.transport = LocalTransport(on_audio=self._frame, on_clear=self._clear, participant=participant)
        self.frames_in = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: dict[str, float] = {}  # socket channel → monotonic expiry
        self.downlink = OrderedSender(downlink_group(session_id), audio_type="audio.out", target=self._downlink_loop,
                                      layer=get_channel_layer)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.listening: asyncio.Event | None = None  # set once uplink messages reach this link

    # -- lifecycle (on the session's loop) --------------------------------------------------
    def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.listening = asyncio.Event()
        with _links_lock:
            _links[self.session_id] = self
        layer = get_channel_layer()
        if layer is not None and not isinstance(layer, InMemoryChannelLayer):
            # another process's sockets reach us through the layer; the in-memory layer has none
            self._keep(self._loop.create_task(self._listen(layer), name=f"audio-in-{self.session_id}"))
        else:
            self.listening.set()

    def close(self) -> None:
        """Unregister and stop listening. Not awaited: a cancelled channel-layer receive can
        take a while to unwind, and the session's end must not wait for it."""
        self._closed = True
        with _links_lock:
            if _links.get(self.session_id) is self:
                del _links[self.session_id]
        for task in list(self._tasks):
            task.cancel()
        self.downlink.cancel()

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- uplink -------------------------------------------------------------------------------
    def post(self, message: dict[str, Any]) -> None:
        """From another thread of this process (the web server's loop)."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and not self._closed:
            loop.call_soon_threadsafe(self.receive, message)

    def receive(self, message: dict[str, Any]) -> None:
        """One uplink message, on the session's loop."""
        kind = message.get("type")
        if kind == "audio.in":
            pcm, rate = message.get("pcm"), message.get("rate")
            if isinstance(pcm, bytes) and rate in UPLINK_RATES and pcm and len(pcm) % 2 == 0:
                self.frames_in += 1
                self.transport.push_audio(np.frombuffer(pcm, dtype="<i2"), int(rate))
        elif kind == "audio.listener":
            channel = str(message.get("channel") or "")
            if message.get("joined"):
                self._listeners[channel] = time.monotonic() + LISTENER_TTL_S
            else:
                self._listeners.pop(channel, None)

    async def _listen(self, layer: Any) -> None:
        channel = await layer.new_channel()
        group = uplink_group(self.session_id)
        await layer.group_add(group, channel)
        if self.listening is not None:
            self.listening.set()
        try:
            while True:
                try:
                    message = await layer.receive(channel)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - a redis blip; cancellation can surface as one
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise asyncio.CancelledError from None
                    log.warning("audio uplink of %s: receive failed; retrying", self.session_id, exc_info=True)
                    await asyncio.sleep(0.5)
                    continue
                self.receive(message)
        finally:
            try:
                await asyncio.shield(layer.group_discard(group, channel))
            except BaseException:  # noqa: BLE001
                pass

    # -- downlink (called by the transport on the session's loop) ---------------------------
    def _heard(self) -> bool:
        if not self._listeners:
            return False
        now = time.monotonic()
        for channel, until in list(self._listeners.items()):
            if until < now:
                del self._listeners[channel]
        return bool(self._listeners)

    def _frame(self, frame: np.ndarray, rate: int) -> None:
        if self._heard():
            self.downlink.put({"type": "audio.out", "pcm": frame.astype("<i2", copy=False).tobytes(), "rate": rate})

    def _clear(self) -> None:
        if self._heard():
            self.downlink.drop_audio()  # not sent yet: of the interrupted speech, so never heard
            self.downlink.put({"type": "audio.clear"})

    def _downlink_loop(self) -> asyncio.AbstractEventLoop | None:
        # the in-memory layer's queues belong to the loop of the sockets that joined it
        return registered_layer_loop() if isinstance(get_channel_layer(), InMemoryChannelLayer) else self._loop
