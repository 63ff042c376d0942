"""The fleet's maintenance, run against the database directly (not as a Celery task).

Reaping dead workers, expiring leases, taking back jobs nobody claimed and assigning
pending jobs must work when no worker is alive and when the broker is down, so no step
here waits on a worker: `manage.py supervise` (the compose `beat` service) and the
embedded server's periodic loop call `maintenance_once` every few seconds. Sending an
assigned job to its worker needs the broker; if it is down the job stays `assigned` and
the next rounds take it back and route it again once the broker answers.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections

from workers.autoscale import autoscale_apply
from workers.dispatch import jobs_assign_pending
from workers.node import autoscale_enabled
from workers.reaper import reap

log = logging.getLogger(__name__)
AUTOSCALE_EVERY_SECONDS = 10.0


def recovery_grace_seconds() -> float:
    """How long to watch heartbeats before judging workers by them: every live worker beats
    (and renews its leases) at least once in this time."""
    return 2 * settings.WORKER_HEARTBEAT_SECONDS + 1.0


class Maintenance:
    """One round at a time; failures are logged once per kind of error, not every round.

    Workers are judged (silent → offline, lease expired → taken back) only once this loop
    has seen the database for a recovery grace: after the loop starts and after a database
    outage, during which no worker could write a heartbeat, so every worker looks silent
    and every lease looks expired although their sessions went on.
    """

    def __init__(self, *, start_with_grace: bool = True) -> None:
        self._last_error: dict[str, str] = {}
        self._last_autoscale = 0.0
        self._judge_after = time.monotonic() + (recovery_grace_seconds() if start_with_grace else 0.0)

    def run_once(self) -> dict[str, Any]:
        self._step("reconnect", close_old_connections)
        counts: dict[str, Any] = {}
        if time.monotonic() >= self._judge_after:
            self._step("reap", lambda: counts.update(reap(assign=False)))
        self._step("assign", lambda: counts.update(assigned=jobs_assign_pending()))
        if autoscale_enabled() and time.monotonic() - self._last_autoscale >= AUTOSCALE_EVERY_SECONDS:
            self._last_autoscale = time.monotonic()
            self._step("autoscale", lambda: counts.update(autoscale=autoscale_apply()))
        return counts

    def _step(self, name: str, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - the database or broker is down: try again next round
            summary = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            if self._last_error.get(name) != summary:
                log.warning("maintenance %s failed (retrying every round): %s", name, summary)
            self._last_error[name] = summary
            if isinstance(exc, DatabaseError):
                self._judge_after = time.monotonic() + recovery_grace_seconds()
            close_old_connections()
        else:
            if name in self._last_error:
                log.info("maintenance %s works again", name)
                del self._last_error[name]

    def loop(self, *, interval: float | None = None, stop: threading.Event | None = None,
             alive_file: Path | None = None) -> None:
        """Rounds until `stop`; touches `alive_file` after each (a container health check reads its age)."""
        interval = interval or settings.SUPERVISE_INTERVAL_SECONDS
        stop = stop or threading.Event()
        while not stop.is_set():
            self.run_once()
            if alive_file is not None:
                alive_file.touch()
            stop.wait(interval)


def start_maintenance_thread(*, interval: float | None = None) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=Maintenance().loop, kwargs={"interval": interval, "stop": stop}, name="maintenance",
                              daemon=True)
    thread.start()
    return thread, stop
