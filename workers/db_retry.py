"""Retry a database write that must not be lost through a short database outage.

Closing a finished session and its job is such a write: if it fails, the job stays
`running`, its lease runs out and the reaper re-dispatches a call that already ended.
The caller keeps the job's lease renewed meanwhile (WorkerNode.hold_lease), so the
maintenance loop leaves the job alone while the write is retried.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from controlplane.broadcaster import hand_over_together

log = logging.getLogger(__name__)
T = TypeVar("T")
TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError)


def retry_database_write(what: str, write: Callable[[], T], *, give_up_after: float | None = None) -> T:
    """Run `write`; on a connection-level database error reconnect and retry with back-off
    for up to `give_up_after` seconds (DB_WRITE_RETRY_SECONDS), then raise the last error."""
    give_up_after = settings.DB_WRITE_RETRY_SECONDS if give_up_after is None else give_up_after
    deadline = time.monotonic() + give_up_after
    delay = 0.2
    attempt = 1
    while True:
        try:
            return write()
        except TRANSIENT_DATABASE_ERRORS as exc:
            if time.monotonic() + delay > deadline:
                log.error("%s: database still unavailable after %d attempts; giving up: %s", what, attempt, exc)
                raise
            if attempt == 1:
                log.warning("%s: database unavailable (%s: %s); retrying for up to %.0fs",
                            what, type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "", give_up_after)
            if not connection.in_atomic_block:
                connection.close()  # the broken connection; the next query opens a new one
            hand_over_together()  # what the caller's block holds (workers.session_runner) does not wait out the outage
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            attempt += 1
