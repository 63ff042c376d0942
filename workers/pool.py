"""Celery's threads pool, plus grow/shrink so remote-control autoscaling can resize it.

Use with `celery worker --pool workers.pool:TaskPool` (the `start` command does).
"""
from __future__ import annotations

from typing import Any

from celery.concurrency.thread import TaskPool as ThreadTaskPool


class TaskPool(ThreadTaskPool):
    def grow(self, n: int = 1) -> None:
        self.limit += n
        # ThreadPoolExecutor spawns threads lazily up to _max_workers, so raising it is enough
        self.executor._max_workers = self.limit

    def shrink(self, n: int = 1) -> None:
        # idle threads above the limit stay parked; the consumer's prefetch (limit × 1)
        # is what keeps more than `limit` tasks from running
        self.limit = max(1, self.limit - n)
        self.executor._max_workers = self.limit

    @property
    def num_processes(self) -> int:
        return self.limit

    def _get_info(self) -> Any:
        return super()._get_info()
