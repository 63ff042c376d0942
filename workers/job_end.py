"""A job's end on its worker: the circuit closed after a success, the outcome recorded and the
freed slot given the next waiting job, in one round trip on PostgreSQL.

Three statements before (breaker_record_success, job_finish, job_take_next), each the one its
module sends alone: here they are CTEs of one statement, so they commit together. Each keeps
its rule: the outcome is the job state machine's own conditional UPDATE (`StateMachine.statement`,
running → completed/failed while this worker holds the job) and its fleet event is the
machine's (`StateMachine.won`); the breaker's UPDATE writes nothing on a clean closed circuit;
the take-next is the dispatcher's, told that this statement frees one of the worker's slots
(its snapshot still counts the finishing job as running) and, after a success, closes its
circuit (the snapshot still shows it half-open). Events go out in the order the three
statements sent them: circuit, job outcome, job taken.

Elsewhere (SQLite), or if the one statement fails for any reason but a lost connection (which
the caller retries), the three run one after another as before.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from django.db import connection
from django.utils import timezone

from controlplane.fleet_events import fleet_events_together
from controlplane.prepared_statements import prepared_cursor
from workers import breaker
from workers.claims import FinishTransition, job_finish, job_finish_transition
from workers.db_retry import TRANSIENT_DATABASE_ERRORS
from workers.dispatch import job_take_next, job_taken, take_next_params, take_next_statement
from workers.models import Job
from workers.services import JOB_MACHINE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobEnd:
    recorded: bool  # the outcome was stored (False: the job was cancelled or taken back meanwhile)
    taken: str | None = None  # the waiting job this worker took into the freed slot
    more: bool | None = None  # other jobs still wait (None: not known, the caller finds out)
    full: bool = False  # the worker had no free slot (the dispatcher refilled it meanwhile)


def job_end(*, job_id: str, worker_id: str, failure: str | None, close_circuit: bool, take_next: bool,
            serves: list[str]) -> JobEnd:
    """Record the outcome of a job this worker ran. `close_circuit`: the job succeeded (the
    worker's breaker closes); `take_next`: the worker may take a waiting job it `serves` into the
    freed slot. Raises a transient database error for the caller to retry (nothing was written)."""
    if connection.vendor == "postgresql":
        try:
            return _job_end_returning(job_id, worker_id, failure, close_circuit, take_next, serves)
        except TRANSIENT_DATABASE_ERRORS:
            raise
        except Exception:  # noqa: BLE001 - the outcome must be stored: the three statements alone
            log.exception("job %s: the one-statement end failed; recording it step by step", job_id)
    return _job_end_steps(job_id, worker_id, failure, close_circuit, take_next, serves)


def _job_end_steps(job_id: str, worker_id: str, failure: str | None, close_circuit: bool, take_next: bool,
                   serves: list[str]) -> JobEnd:
    if close_circuit:
        try:
            breaker.breaker_record_success(worker_id=worker_id)
        except TRANSIENT_DATABASE_ERRORS:  # the circuit is advisory; the job's outcome is not
            log.warning("circuit breaker not updated for %s: database unavailable", worker_id)
    recorded = job_finish(job_id=job_id, worker_id=worker_id, failure=failure)
    if not take_next or connection.vendor != "postgresql":  # job_take_next is PostgreSQL's only
        return JobEnd(recorded)
    try:
        taken, more, full = job_take_next(worker_id=worker_id, serves=serves)
    except Exception:  # noqa: BLE001 - the periodic loop will route the queue; the outcome stands
        log.warning("could not take the next job", exc_info=True)
        return JobEnd(recorded)
    return JobEnd(recorded, taken, more, full)


def _finish_statement(finish: FinishTransition) -> tuple[str, list[object]]:
    statement = JOB_MACHINE.statement(finish.job, finish.target, from_=finish.from_, where=finish.where, **finish.values)
    assert statement is not None, "running → completed/failed is a rule of the job machine"
    return statement


@lru_cache(maxsize=4)
def _end_sql(finish: str, n: int) -> str:
    """The whole statement around the finish transition's (the same text for every job: one
    cache entry; its positional placeholders become pyformat ones like the rest)."""
    pieces = finish.split("%s")
    assert len(pieces) == n + 1 and "%(" not in finish
    finish = "".join(piece + (f"%(finish{i})s" if i < n else "") for i, piece in enumerate(pieces))
    take_ctes, take_columns = take_next_statement(freed="SELECT COUNT(*) FROM finished", closing="%(close)s")
    pk = connection.ops.quote_name(Job._meta.pk.column)
    return (f"WITH breaker AS ({breaker.close_sql()}), finished AS ({finish} RETURNING {pk}), {take_ctes} "
            f"SELECT (SELECT circuit_state FROM breaker), (SELECT COUNT(*) FROM finished), {take_columns}")


def _job_end_returning(job_id: str, worker_id: str, failure: str | None, close_circuit: bool, take_next: bool,
                       serves: list[str]) -> JobEnd:
    now = timezone.now()
    finish = job_finish_transition(job_id=job_id, worker_id=worker_id, failure=failure)
    finish_sql, finish_params = _finish_statement(finish)
    params = {**take_next_params(worker_id=worker_id, serves=serves, now=now, take=take_next),
              "close": close_circuit, **{f"finish{i}": value for i, value in enumerate(finish_params)}}
    with prepared_cursor() as cursor:  # planned once per connection: planning it cost a third of its time
        cursor.execute(_end_sql(finish_sql, len(finish_params)), params)
        state_before, finished, taken, attempts, more, full = cursor.fetchone()
    # the events, in the order the three statements alone would send them, in one hand-over
    with fleet_events_together():
        if close_circuit:
            breaker.circuit_closed(worker_id=worker_id, state_before=state_before)
        if finished:
            JOB_MACHINE.won(finish.job, finish.target, where=finish.where, **finish.values)
        if taken is not None:
            job_taken(job_id=taken, attempts=attempts, worker_id=worker_id, now=now)
    return JobEnd(bool(finished), taken, bool(more), bool(full))
