"""The process's one broadcaster: one thread, one event loop, one channel-layer connection.

Session events (the event sink, once a batch is stored) and fleet events (state changes)
leave the process from here, each group's in the order they were handed over (hand-overs
queued behind one another go out together: see Broadcaster._waiting_too). `async_to_sync` would
open a fresh loop per call, and with it a fresh Redis connection; sending on the caller's
thread would make a state change or the sink's writer wait for Redis.

The in-memory channel layer (embedded mode) keeps asyncio queues that belong to the web
server's loop: a consumer registers that loop, and sends for it are made there.

Best effort: the database is the record, this is the live view. A failed send is logged,
never raised into the change that caused it.
"""
from __future__ import annotations

import asyncio
import atexit
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from concurrent.futures import thread as _futures_thread
from typing import Any

from channels.layers import get_channel_layer

from controlplane.redis_group_send import group_send_many, supports_many

log = logging.getLogger(__name__)
IN_MEMORY_SEND_TIMEOUT_S = 5.0
# hand-overs queued behind one another go out as one (bounded, so one delivery stays short)
MAX_HANDOVERS_TOGETHER = 256
# Woken by a hand-over, the thread waits this long before it delivers, with the interpreter lock
# released. The thread that handed over is usually mid-request (a dispatch POST hands its fleet
# event over at commit, then still pushes the job and renders the response): delivering at once
# took the lock from it for the delivery's Python, about 1.2 ms of each POST /api/v1/jobs/
# (bench/dispatch.py, paced p50 5.3-5.7 ms with the fleet event, 4.2-4.5 ms without). Waiting,
# the delivery runs after the request, and a burst's hand-overs share it. Live views get their
# events this much later (the goal is p99 < 100 ms).
DELIVERY_DELAY_S = 0.002

Message = dict[str, Any]
GroupSend = tuple[str, Message]  # (group, message)


# --- where in-memory channel layers live ---------------------------------------------------
_layer_loop: asyncio.AbstractEventLoop | None = None


def register_layer_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _layer_loop
    _layer_loop = loop


def registered_layer_loop() -> asyncio.AbstractEventLoop | None:
    """The web server's loop, once a consumer has registered it (None before)."""
    return _layer_loop


def _is_in_memory(layer: Any) -> bool:
    return type(layer).__name__ == "InMemoryChannelLayer"


async def asend(sends: Sequence[GroupSend]) -> None:
    """Make the group sends now, from code already running on an event loop.

    On channels_redis every group of a hand-over goes out together, in two round trips per
    Redis host (`controlplane.redis_group_send`: a writer cycle hands over one send per
    live session); the sends of one group stay in hand-over order. Other layers send group
    by group.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    by_group: dict[str, list[Message]] = {}
    for group, message in sends:
        by_group.setdefault(group, []).append(message)
    if supports_many(layer):
        try:
            await group_send_many(layer, by_group)
        except Exception:  # noqa: BLE001 - best effort: the database is the record
            log.warning("broadcast to %d groups failed", len(by_group), exc_info=True)
        return
    for group, messages in by_group.items():
        await _send_group(layer, group, messages)


async def _send_group(layer: Any, group: str, messages: list[Message]) -> None:
    for message in messages:
        try:
            await layer.group_send(group, message)
        except Exception:  # noqa: BLE001 - best effort: the database is the record
            log.warning("broadcast to %s failed", group, exc_info=True)


# --- hand-overs of one thread, together ------------------------------------------------------
_together = threading.local()


@contextmanager
def broadcasts_together() -> Iterator[None]:
    """What this thread hands to the process's broadcaster inside the block goes out as ONE
    hand-over when the block ends (even by an exception), in the order it was handed over; each
    send's future is done once that hand-over went out. Nested: the outer block sends. For the
    steps of one job that follow one another on one thread (its claim and its session's row; its
    session's close, end-of-call report and the job's end): bench/dispatch.py's echo job made 9
    hand-overs, each a broadcaster wake-up and a Redis round of its own.

    Sends are only held back, never reordered: whoever needs them out before the block ends (it
    waits for a listener's answer, or blocks for long) calls `hand_over_together()` first;
    `send_and_wait` does."""
    if getattr(_together, "items", None) is not None:
        yield
        return
    _together.items = []
    try:
        yield
    finally:
        hand_over_together()
        _together.items = None


def hand_over_together() -> None:
    """Hand over now what this thread's `broadcasts_together` block has collected so far (the
    block stays open)."""
    items: list[Item] | None = getattr(_together, "items", None)
    if not items:
        return
    _together.items = []
    broadcaster._hand_over(items)


# --- the thread ----------------------------------------------------------------------------
Item = tuple[Sequence[GroupSend], Future[None]]  # one send's group sends, done once they went out


class Broadcaster:
    """Sends in hand-over order (per group) on one long-lived loop, so one reused Redis connection."""

    def __init__(self) -> None:
        # each entry one hand-over: the items of one send, or of a `broadcasts_together` block
        self._queue: queue.SimpleQueue[list[Item] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._pending = 0

    def send(self, sends: Sequence[GroupSend]) -> Future[None]:
        """Queue group sends without waiting; the future is done once they went out (or failed).
        Inside this thread's `broadcasts_together` block they wait for the block's hand-over."""
        done: Future[None] = Future()
        items: list[Item] | None = getattr(_together, "items", None)
        if items is not None and self is broadcaster:
            items.append((sends, done))
        else:
            self._hand_over([(sends, done)])
        return done

    def _hand_over(self, items: list[Item]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                try:
                    thread = threading.Thread(target=self._run, name="broadcaster", daemon=True)
                    thread.start()
                except RuntimeError:  # the interpreter is shutting down: no new threads
                    log.warning("broadcast dropped: the process is exiting")
                    for _, done in items:
                        done.set_result(None)
                    return
                self._thread = thread
        with self._idle:
            self._pending += len(items)
        self._queue.put(items)

    def send_and_wait(self, sends: Sequence[GroupSend], timeout: float = 10.0) -> None:
        """Queue group sends and wait until they went out (the event sink: stored, then sent)."""
        done: Future[None] = Future()
        items: list[Item] = [(sends, done)]
        held: list[Item] | None = getattr(_together, "items", None) if self is broadcaster else None
        if held:  # what this thread's block held back goes first, in the same hand-over: this waits for none
            items[:0] = held
            _together.items = []
        self._hand_over(items)
        try:
            done.result(timeout)
        except Exception:  # noqa: BLE001 - a slow layer: the sends stay queued, in order
            log.warning("broadcast not done within %.1fs", timeout, exc_info=True)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far has been sent (tests, shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def stop(self) -> None:
        # send what is queued, then stop before the interpreter tears threads down
        if self._thread is not None and self._thread.is_alive():
            self.flush(2.0)
            self._queue.put(None)
            self._thread.join(2.0)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            stopping = False
            while not stopping:
                items = self._queue.get()
                if items is None:
                    return
                time.sleep(DELIVERY_DELAY_S)
                batch, stopping = self._waiting_too(items)
                try:
                    if not _futures_thread._shutdown:  # the interpreter is exiting: executors are gone
                        self._deliver_all(loop, batch)
                except Exception:  # noqa: BLE001 - best effort: the database is the record
                    log.warning("broadcast failed", exc_info=True)
                finally:
                    for _, done in batch:
                        done.set_result(None)
                    with self._idle:
                        self._pending -= len(batch)
                        self._idle.notify_all()
        finally:
            loop.close()  # channels_redis closes this loop's connections when it closes

    def _waiting_too(self, first: list[Item]) -> tuple[list[Item], bool]:
        """The first hand-over's items and those of the hand-overs queued behind it (up to
        MAX_HANDOVERS_TOGETHER items), and whether the stop marker came after them. A job's state
        changes and events are ~10 sends of one message each; sent one by one, each paid its own
        Redis round trips (bench/dispatch.py's worker in a burst: 45 % of its GIL in the broadcaster)."""
        batch = list(first)
        while len(batch) < MAX_HANDOVERS_TOGETHER:
            try:
                items = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
            if items is None:
                return batch, True
            batch.extend(items)
        return batch, False

    def _deliver_all(self, loop: asyncio.AbstractEventLoop, batch: list[Item]) -> None:
        if len(batch) == 1 or not supports_many(get_channel_layer()):
            # other layers send group by group: keep each send's order across its groups
            for sends, _ in batch:
                self._deliver(loop, sends)
            return
        # one delivery of them all: each group's messages stay in send order (asend)
        self._deliver(loop, [send for sends, _ in batch for send in sends])

    @staticmethod
    def _deliver(loop: asyncio.AbstractEventLoop, sends: Sequence[GroupSend]) -> None:
        target = _layer_loop if _is_in_memory(get_channel_layer()) else None
        if target is not None and target.is_running():
            asyncio.run_coroutine_threadsafe(asend(sends), target).result(IN_MEMORY_SEND_TIMEOUT_S)
        else:
            loop.run_until_complete(asend(sends))


broadcaster = Broadcaster()
atexit.register(broadcaster.stop)
