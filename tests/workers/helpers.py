from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connection


def wait_for(predicate: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


class InThread:
    """Run a blocking call (a run_session task body) on a thread; keep its result."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = fn()
            except BaseException as exc:  # noqa: BLE001
                self.error = exc
            finally:
                connection.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self, timeout: float = 15.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the task did not return"
        if self.error is not None:
            raise self.error
        return self.result
