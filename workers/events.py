"""Fleet broadcasts off the hot path.

`publish_fleet_event` goes through async_to_sync: a fresh event loop per call, and with it a
fresh channel-layer (Redis) connection. Dispatch and session start must not wait for that,
so state changes enqueue their event here, and one background thread with one long-lived
loop (so one reused Redis connection) broadcasts them in order.
"""
from __future__ import annotations

import atexit
import logging
import queue
import threading
from concurrent.futures import thread as _futures_thread
from typing import Any

import asyncio

from controlplane.fleet_events import apublish_fleet_event

log = logging.getLogger(__name__)
_queue: queue.SimpleQueue[tuple[str, dict[str, Any]] | None] = queue.SimpleQueue()
_lock = threading.Lock()
_thread: threading.Thread | None = None
_idle = threading.Condition()
_pending = 0


def _run() -> None:
    global _pending
    loop = asyncio.new_event_loop()
    try:
        while True:
            item = _queue.get()
            if item is None or _futures_thread._shutdown:  # stopping, or the interpreter is exiting
                return
            try:
                loop.run_until_complete(apublish_fleet_event(*item))
            except Exception:  # noqa: BLE001 - the database is the record; this is the live view
                log.warning("fleet event not broadcast", exc_info=True)
            with _idle:
                _pending -= 1
                _idle.notify_all()
    finally:
        loop.close()


def publish(kind: str, data: dict[str, Any]) -> None:
    """Broadcast a job/worker/session status change soon, in order, without waiting."""
    global _thread, _pending
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="fleet-events", daemon=True)
            _thread.start()
    with _idle:
        _pending += 1
    _queue.put((kind, data))


def flush(timeout: float = 5.0) -> bool:
    """Wait until everything published so far has been broadcast (tests, shutdown)."""
    with _idle:
        return _idle.wait_for(lambda: _pending == 0, timeout)


@atexit.register
def _stop() -> None:
    # broadcast what is queued, then stop before the interpreter tears threads down
    if _thread is not None and _thread.is_alive():
        flush(2.0)
        _queue.put(None)
        _thread.join(2.0)
