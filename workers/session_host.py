"""SessionHost: one asyncio event loop per worker process, in a dedicated thread.

Celery's threads pool runs `run_session` tasks; each submits its session coroutine here
and blocks on the returned future until the session ends. A session costs a coroutine,
not a process or a thread's own loop, and all sessions of the process share this loop.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any

from runtime.gc_policy import tune_for_live_audio

log = logging.getLogger(__name__)


class SessionHost:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="session-host", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop
        # start-up's objects frozen, fewer objects promoted: the collector's pauses hold
        # every call's frames (runtime.gc_policy says by how much)
        tune_for_live_audio()
        log.info("session host loop started")

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run a coroutine on the host loop and wait for its result (from a non-loop thread)."""
        return self.submit(coro).result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)


host = SessionHost()
