"""Ordered, non-blocking sends of audio messages to one channel-layer group.

`put()` may be called from any thread and never waits. One pump coroutine at a time sends
what is queued, in order, on the loop `target()` names (the in-memory layer's loop, or the
caller's). Audio messages (`{"type": audio_type, "pcm": bytes, "rate": int}`) that wait
together at the same rate go as one: a slow layer (channels-redis on a busy machine manages
only so many sends a second) then costs latency, not audio. Other messages (a clear) keep
their place between the audio.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

MAX_QUEUED = 100  # messages; beyond that the oldest are dropped (2 s of 20 ms frames)
MAX_BATCH_BYTES = 48_000 * 2  # one message carries at most a second of 48 kHz audio


class OrderedSender:
    def __init__(self, group: str, *, audio_type: str, target: Callable[[], asyncio.AbstractEventLoop | None],
                 layer: Callable[[], Any]) -> None:
        self.group = group
        self.audio_type = audio_type
        self._target = target
        self._layer = layer
        self._lock = threading.Lock()
        self._queue: deque[dict[str, Any]] = deque()
        self._pumping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.sent = 0  # audio messages that reached the layer
        self.dropped = 0

    def put(self, message: dict[str, Any]) -> None:
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(message)
            if self._pumping:
                return
            self._pumping = True
        layer, target = self._layer(), self._target()
        if layer is None or target is None or target.is_closed():
            with self._lock:
                self.dropped += len(self._queue)
                self._queue.clear()
                self._pumping = False
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if target is running:
            task = target.create_task(self._pump(layer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            asyncio.run_coroutine_threadsafe(self._pump(layer), target)

    def drop_audio(self) -> None:
        """Forget the audio not sent yet (it belongs to an interrupted speech)."""
        with self._lock:
            self._queue = deque(m for m in self._queue if m["type"] != self.audio_type)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def _next(self) -> dict[str, Any] | None:
        with self._lock:
            if not self._queue:
                self._pumping = False
                return None
            first = self._queue.popleft()
            if first["type"] != self.audio_type or not self._queue:
                return first
            parts, size = [first["pcm"]], len(first["pcm"])
            while (self._queue and self._queue[0]["type"] == self.audio_type and self._queue[0]["rate"] == first["rate"]
                   and size + len(self._queue[0]["pcm"]) <= MAX_BATCH_BYTES):
                pcm = self._queue.popleft()["pcm"]
                parts.append(pcm)
                size += len(pcm)
            return {**first, "pcm": b"".join(parts)}

    async def _pump(self, layer: Any) -> None:
        try:
            while (message := self._next()) is not None:
                try:
                    await layer.group_send(self.group, message)
                    self.sent += message["type"] == self.audio_type
                except Exception:  # noqa: BLE001 - audio is best effort; the session goes on
                    self.dropped += 1
                    log.debug("audio message to %s not sent", self.group, exc_info=True)
        except BaseException:  # cancelled with its loop: the next put starts a new pump
            with self._lock:
                self._pumping = False
            raise
