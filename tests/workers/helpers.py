"""Running a blocking task body (a worker's) on a thread of this test process."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


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
