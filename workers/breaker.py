"""A circuit breaker per worker, kept on the Worker row so every dispatcher sees it.

closed: jobs flow. After CIRCUIT_BREAKER_THRESHOLD consecutive failures → open: the
worker gets no jobs. After CIRCUIT_BREAKER_COOLDOWN_SECONDS → half-open: exactly one
trial job (the dispatcher that wins the conditional update sends it). A success closes
the circuit, a failure opens it again.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from controlplane.prepared_statements import prepared_cursor
from workers.events import circuit_changed
from workers.models import CircuitState, Worker

log = logging.getLogger(__name__)


def _cooldown() -> timedelta:
    return timedelta(seconds=settings.CIRCUIT_BREAKER_COOLDOWN_SECONDS)


def breaker_record_failure(*, worker_id: str) -> str:
    """Count one failed job on the worker; returns the circuit state afterwards."""
    Worker.objects.filter(pk=worker_id).update(consecutive_failures=F("consecutive_failures") + 1)
    threshold = settings.CIRCUIT_BREAKER_THRESHOLD
    now = timezone.now()
    # a failed half-open trial reopens at once; a closed circuit opens at the threshold
    opened = Worker.objects.filter(pk=worker_id, circuit_state=CircuitState.HALF_OPEN).update(
        circuit_state=CircuitState.OPEN, circuit_opened_at=now
    ) or Worker.objects.filter(
        pk=worker_id, circuit_state=CircuitState.CLOSED, consecutive_failures__gte=threshold
    ).update(circuit_state=CircuitState.OPEN, circuit_opened_at=now)
    if opened:
        log.warning("circuit opened for worker %s", worker_id)
        circuit_changed(worker_id, CircuitState.OPEN)
        return CircuitState.OPEN
    return Worker.objects.filter(pk=worker_id).values_list("circuit_state", flat=True).first() or CircuitState.CLOSED


def breaker_record_success(*, worker_id: str) -> None:
    """Close the circuit and reset the failure count. Every finished job calls this, so on
    PostgreSQL it is one statement that writes nothing when the circuit is closed and clean."""
    if connection.vendor == "postgresql":
        changed = _close_returning(worker_id)
    else:
        changed = bool(Worker.objects.filter(pk=worker_id).exclude(circuit_state=CircuitState.CLOSED).update(
            circuit_state=CircuitState.CLOSED, consecutive_failures=0, circuit_opened_at=None
        ))
        Worker.objects.filter(pk=worker_id, consecutive_failures__gt=0).update(consecutive_failures=0)
    if changed:
        log.info("circuit closed for worker %s", worker_id)
        circuit_changed(worker_id, CircuitState.CLOSED)


def _close_returning(worker_id: str) -> bool:
    """UPDATE … FROM the row as the statement found it: True when the circuit was not closed.

    Not locked first (every finished job would queue on its worker's row): in a race with a
    concurrent change the event may name a stale earlier state; the row itself ends closed."""
    with prepared_cursor() as cursor:
        cursor.execute(close_sql(), {"closed": CircuitState.CLOSED, "worker": worker_id, "close": True})
        row = cursor.fetchone()
    return row is not None and row[0] != CircuitState.CLOSED


@lru_cache(maxsize=1)
def close_sql() -> str:
    """`breaker_record_success`'s UPDATE on PostgreSQL, RETURNING the state it found; for a caller
    that sends it inside a larger statement too (workers.job_end). Parameters (pyformat):
    closed, worker, close (false: the statement changes nothing)."""
    table = connection.ops.quote_name(Worker._meta.db_table)
    return (f"UPDATE {table} w SET circuit_state = %(closed)s, consecutive_failures = 0, circuit_opened_at = NULL "
            f"FROM (SELECT worker_id, circuit_state FROM {table} WHERE worker_id = %(worker)s) before "
            f"WHERE w.worker_id = before.worker_id AND %(close)s "
            f"AND (w.circuit_state <> %(closed)s OR w.consecutive_failures > 0) "
            f"RETURNING before.circuit_state")


def circuit_closed(*, worker_id: str, state_before: str | None) -> None:
    """After a close: announce it when the circuit was not closed (None: the row was clean)."""
    if state_before is not None and state_before != CircuitState.CLOSED:
        log.info("circuit closed for worker %s", worker_id)
        circuit_changed(worker_id, CircuitState.CLOSED)


def breaker_try_half_open(*, worker_id: str, now: datetime | None = None) -> bool:
    """Move an open circuit whose cool-down has passed to half-open; True for the one winner."""
    now = now or timezone.now()
    won = Worker.objects.filter(
        pk=worker_id, circuit_state=CircuitState.OPEN, circuit_opened_at__lte=now - _cooldown()
    ).update(circuit_state=CircuitState.HALF_OPEN)
    if won:
        circuit_changed(worker_id, CircuitState.HALF_OPEN)
    return bool(won)


def breaker_allows(worker: Worker, *, now: datetime | None = None) -> bool:
    """Whether a worker in this snapshot may be offered a job (half-open needs the trial win)."""
    now = now or timezone.now()
    if worker.circuit_state == CircuitState.CLOSED:
        return True
    if worker.circuit_state == CircuitState.OPEN:
        return worker.circuit_opened_at is not None and worker.circuit_opened_at <= now - _cooldown()
    return False
