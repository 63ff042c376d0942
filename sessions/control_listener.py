"""Worker side of operator commands: one listener per worker process, not one per session.

Senders address the hosting worker's group (`sessions.control.worker_control_group`, the
job's assigned worker) with the session's id in the message. The process's listener, on the
loop its sessions run on, joined that group once and hands each command to the session it
names, then confirms on the command's reply channel. A session only registers and
unregisters here (`control_open` / `control_close`, plain dict operations): per session it
used to cost a channel, a receive task and a group join and leave (three Redis round trips,
a quarter of the session loop's time in bench/dispatch.py's burst).

A command for a session this process does not host (it just ended) gets no confirmation:
the sender answers 503 after its timeout, as when nobody listened on the session's group.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from redis.exceptions import TimeoutError as RedisTimeoutError

from sessions.control import worker_control_group
from sessions.job_context import JobContext

log = logging.getLogger(__name__)
# the listener renews its group membership this often: an emptied channel layer (a Redis
# restart without persistence) forgets groups without the listener's receive failing
REJOIN_SECONDS = 15.0
FAILURE_RETRY_SECONDS = 0.5

_confirming: set[asyncio.Future[None]] = set()  # confirmations in flight (a reference keeps each alive)


class WorkerListener:
    """The listener of one worker id on one event loop, and the sessions it routes to."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.sessions: dict[str, JobContext] = {}
        # one session's commands are handled in arrival order (as its own listener did)
        self._in_order: dict[str, asyncio.Lock] = {}
        self.task: asyncio.Task[None] | None = None
        self.joined = asyncio.Event()  # the group has this listener's channel (tests wait on it)

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._listen(), name=f"control-{self.worker_id}")

    async def _listen(self) -> None:
        layer = get_channel_layer()
        group = worker_control_group(self.worker_id)
        channel = await layer.new_channel()
        loop = asyncio.get_running_loop()
        joined_at: float | None = None
        failing_since: float | None = None
        try:
            while True:
                try:
                    if joined_at is None or loop.time() - joined_at >= REJOIN_SECONDS:
                        await layer.group_add(group, channel)
                        joined_at = loop.time()
                        self.joined.set()
                    message = await asyncio.wait_for(layer.receive(channel), timeout=REJOIN_SECONDS)
                except asyncio.CancelledError:
                    raise
                except (asyncio.TimeoutError, RedisTimeoutError):
                    continue  # an idle blocking receive timing out is normal: nobody sent a command
                except Exception as exc:  # noqa: BLE001 - redis down or restarting; cancellation can surface as one
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise asyncio.CancelledError from None
                    if failing_since is None:
                        failing_since = loop.time()
                        log.warning("[worker=%s] control channel unavailable (%s: %s); rejoining when it is back",
                                    self.worker_id, type(exc).__name__, exc)
                    joined_at = None  # an emptied Redis forgot the group: join again
                    await asyncio.sleep(FAILURE_RETRY_SECONDS)
                    continue
                if failing_since is not None:
                    log.info("[worker=%s] control channel back after %.1fs", self.worker_id, loop.time() - failing_since)
                    failing_since = None
                self._route(layer, message)
        finally:
            try:
                await asyncio.shield(layer.group_discard(group, channel))
            except BaseException:  # noqa: BLE001
                pass

    def _route(self, layer: Any, message: dict[str, Any]) -> None:
        if message.get("type") != "session.command":
            return
        session_id = message.get("session_id")
        ctx = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if ctx is None:
            log.info("[worker=%s] operator command for session %s, not hosted here: not confirmed",
                     self.worker_id, session_id)
            return
        lock = self._in_order.setdefault(ctx.session_id, asyncio.Lock())
        # a task of its own, not the session's: an `end` stops the session, and the sender must
        # still get its confirmation
        confirming = asyncio.ensure_future(_handle_in_order(lock, ctx, layer, message))
        _confirming.add(confirming)
        confirming.add_done_callback(_confirming.discard)

    def forget(self, ctx: JobContext) -> None:
        if self.sessions.get(ctx.session_id) is ctx:
            del self.sessions[ctx.session_id]
            self._in_order.pop(ctx.session_id, None)


async def _handle_in_order(lock: asyncio.Lock, ctx: JobContext, layer: Any, message: dict[str, Any]) -> None:
    async with lock:
        await _handle_and_confirm(ctx, layer, message)


async def _handle_and_confirm(ctx: JobContext, layer: Any, message: dict[str, Any]) -> None:
    reply: dict[str, Any] = {"type": "session.command.ack", "ok": True}
    try:
        await ctx.handle_command(message["command"], message)
    except Exception as exc:  # noqa: BLE001 - a bad command must not end the listener
        ctx.log.exception("operator command %s failed", message.get("command"))
        reply = {"type": "session.command.ack", "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    reply_to = message.get("reply_to")
    if reply_to:
        try:
            await layer.send(reply_to, reply)
        except Exception:  # noqa: BLE001 - the sender times out and says so
            ctx.log.warning("could not confirm operator command %s", message.get("command"), exc_info=True)


# --- one listener per (event loop, worker id) -------------------------------------------------
_lock = threading.Lock()
_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, WorkerListener]] = weakref.WeakKeyDictionary()


def worker_listener(worker_id: str) -> WorkerListener | None:
    """This loop's listener for `worker_id`, if a session of that worker opened one here."""
    with _lock:
        return _by_loop.get(asyncio.get_running_loop(), {}).get(worker_id)


def control_open(ctx: JobContext) -> None:
    """On the session's loop: route commands sent to its worker for it to it from now on."""
    try:
        layer = get_channel_layer()
    except Exception:  # noqa: BLE001 - a misconfigured layer costs the commands, not the session
        log.warning("[session=%s] no channel layer: operator commands cannot reach it", ctx.session_id, exc_info=True)
        return
    if layer is None or isinstance(layer, InMemoryChannelLayer) or not ctx.worker_id:
        return  # in-process delivery only (sessions.control), or no worker to be addressed through
    with _lock:
        listeners = _by_loop.setdefault(asyncio.get_running_loop(), {})
        listener = listeners.get(ctx.worker_id)
        if listener is None:
            listener = listeners[ctx.worker_id] = WorkerListener(ctx.worker_id)
    listener.sessions[ctx.session_id] = ctx
    listener.start()


def control_close(ctx: JobContext) -> None:
    """On the session's loop: its commands are no longer taken here (the listener stays)."""
    listener = worker_listener(ctx.worker_id) if ctx.worker_id else None
    if listener is not None:
        listener.forget(ctx)
