"""Dispatch: accept a job (idempotency, backpressure, rate limit), route it to a worker.

The API validates a request with its serializer and calls `job_create`; in-process callers
call `job_dispatch`, which applies the same serializer's rules first. Cancelling is
`job_cancel_request`; the periodic loop calls `jobs_assign_pending`. Routing picks a worker by the configured strategy, assigns the job
with a conditional update and sends the `workers.run_session` task, by name, to that
worker's own queue (the tasks module imports this one, not the other way round).
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from contextlib import nullcontext
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from agents.models import Agent, AgentState
from controlplane.errors import Conflict, DomainError, Forbidden, IllegalTransition, NotFound, Throttled
from controlplane.models import AuthCompanion
from controlplane.prepared_statements import prepared_cursor
from controlplane.scopes import LOADTEST
from controlplane.sql_rows import insert_row, json_value, model_from_json_row, model_from_row, select_columns
from sessions.control import stop_job_session
from sessions.simulated_callers import simulated_caller_validate
from workers import breaker
from workers.models import CircuitState, Job, JobStatus, JobType, Transport, Worker, WorkerStatus
from workers.services import JOB_MACHINE, job_assign, job_cancel
from workers.rate_limit import retry_after_seconds
from workers.run_session_publish import RUN_SESSION_TASK, send_run_session  # noqa: F401 - workers.tasks names its task with it
from workers.serializers import idempotency_key_clean, job_request_clean
from workers.strategies import Candidate, choose
from workers.worker_types import required_worker_type, worker_serves

log = logging.getLogger(__name__)

ACTIVE_JOB_STATUSES = (JobStatus.ASSIGNED, JobStatus.RUNNING)


def livekit_configured() -> bool:
    return bool(settings.LIVEKIT_URL and settings.LIVEKIT_API_KEY and settings.LIVEKIT_API_SECRET)


def default_transport() -> str:
    return Transport.LIVEKIT if livekit_configured() else Transport.LOCAL


def _fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def _check_transport(transport: str) -> None:
    if transport == Transport.LIVEKIT and not livekit_configured():
        raise DomainError("transport 'livekit' needs LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET", field="transport")


def _check_rate_limit(api_key: Any) -> None:
    """At most DISPATCH_RATE_LIMIT_PER_MINUTE new jobs per API key a minute (in a burst, then
    refilled at that rate): one shared token bucket per key, O(1) whatever the dispatch rate."""
    if api_key is None:
        return
    limit = settings.DISPATCH_RATE_LIMIT_PER_MINUTE
    retry = retry_after_seconds(f"{api_key.pk}:{api_key.prefix}", per_minute=limit)
    if retry is not None:
        raise Throttled(f"dispatch rate limit of {limit} jobs per minute reached for this API key", retry_after=retry)


def _check_loadtest(metadata: dict[str, Any], api_key: Any) -> None:
    """A load-test call (metadata.loadtest = true: a simulated caller drives it over the audio
    socket, or joins its LiveKit room) is for benches and load tests only: the `loadtest`
    scope or LOADTEST_ALLOWED."""
    if "loadtest" not in metadata:
        return
    if metadata["loadtest"] is not True:
        raise DomainError("metadata.loadtest must be true when given", field="metadata")
    if not settings.LOADTEST_ALLOWED and (api_key is None or LOADTEST not in api_key.scopes):
        raise Forbidden("load-test calls need an API key with the 'loadtest' scope (or LOADTEST_ALLOWED)", field="metadata")


def _check_simulated_caller(metadata: dict[str, Any], transport: str, api_key: Any) -> None:
    """A simulated caller inside the worker (metadata.simulated_caller, `sessions.simulated_callers`)
    is a load test too: the same gate, then every field checked, so a bad one is a 400 here."""
    if "simulated_caller" not in metadata:
        return
    if not settings.LOADTEST_ALLOWED and (api_key is None or LOADTEST not in api_key.scopes):
        raise Forbidden("a simulated caller needs an API key with the 'loadtest' scope (or LOADTEST_ALLOWED)",
                        field="metadata.simulated_caller")
    if transport != Transport.LOCAL:
        raise DomainError("a simulated caller needs transport 'local' (it speaks into the session on its worker)",
                          field="transport")
    simulated_caller_validate(metadata["simulated_caller"])


def _check_queue_room() -> None:
    """Backpressure: at most JOB_QUEUE_LIMIT pending jobs in all, counted from the jobs table
    (the truth, shared by every web process). Only a job that would wait pays for the count,
    and the count stops at the limit: a job a worker takes at once never joins the queue."""
    limit = settings.JOB_QUEUE_LIMIT
    if Job.objects.filter(status=JobStatus.PENDING).order_by()[:limit].count() >= limit:
        raise Throttled(f"the pending queue is full ({limit} jobs); retry later", retry_after=5)


def _replay(existing: Job, fingerprint: str) -> Job:
    if existing.request_fingerprint != fingerprint:
        raise Conflict("Idempotency-Key was already used with a different request body", field="idempotency_key")
    existing.created = False  # type: ignore[attr-defined]
    return existing


def job_dispatch(
    *,
    agent_id: str | None,
    room: str,
    metadata: dict[str, Any] | None = None,
    priority: int = 5,
    participant_identity: str = "",
    transport: str | None = None,
    idempotency_key: str | None = None,
    api_key: Any = None,
    job_type: str = JobType.AGENT_SESSION,
) -> Job:
    """`job_create` for in-process callers (the `dispatch` command, the playground, tests):
    the arguments are first checked by the rules POST /jobs/ applies (JobCreateSerializer);
    a bad one raises DomainError naming the field."""
    request = job_request_clean({
        "job_type": job_type, "agent": agent_id, "room": room, "metadata": {} if metadata is None else metadata,
        "priority": priority, "participant_identity": participant_identity, "transport": transport,
    })
    return job_create(request, idempotency_key=idempotency_key_clean(idempotency_key), api_key=api_key)


def job_create(request: Mapping[str, Any], *, idempotency_key: str | None = None, api_key: Any = None,
               prefetched: AgentAndFleetRead | None = None) -> Job:
    """Create a pending job from a validated request (JobCreateSerializer's data) and route it
    once committed.

    Returns the Job with `.created` = False when an earlier request with the same
    Idempotency-Key (and the same body) made it. Raises NotFound (unknown agent),
    Conflict (inactive agent; key reused with another body), Throttled (queue full or
    the API key's rate limit), DomainError (LiveKit not configured; a load-test call the
    key may not make). `prefetched`: the agent and fleet read with the API key (the POST's
    `agent_and_fleet_read`), used when it read this request's agent.
    """
    job_type, agent_id, room, metadata = request["job_type"], request["agent"], request["room"], request["metadata"]
    priority, participant_identity = request["priority"], request["participant_identity"]
    transport = request["transport"] or default_transport()
    _check_transport(transport)
    body = {
        "agent": agent_id, "room": room, "metadata": metadata, "priority": priority,
        "participant_identity": participant_identity, "transport": transport, "job_type": job_type,
    }
    fingerprint = _fingerprint(body)
    if idempotency_key:
        existing = Job.objects.filter(api_key=api_key, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _replay(existing, fingerprint)

    agent, fleet, now = None, None, timezone.now()
    if agent_id is not None or job_type == JobType.AGENT_SESSION:
        # the fleet is read with the agent, for the worker choice below: one round trip, or
        # none when it rode along with the API key's lookup
        read = prefetched.result(agent_id) if prefetched is not None else None
        agent, fleet = read if read is not None else _agent_and_fleet(agent_id, now)
        if agent is None:
            raise NotFound(f"agent '{agent_id}' does not exist", field="agent")
        if agent.state != AgentState.ACTIVE:
            raise Conflict(f"agent '{agent_id}' is {agent.state}; only active agents accept jobs", field="agent")
    _check_loadtest(metadata, api_key)
    _check_simulated_caller(metadata, transport, api_key)
    _check_rate_limit(api_key)

    job = Job(
        job_type=job_type, agent=agent, agent_version=agent.version if agent else None, room_name=room,
        room={"name": room}, participant_identity=participant_identity, transport=transport, priority=priority,
        metadata=metadata, max_attempts=settings.JOB_MAX_ATTEMPTS,
        worker_type=required_worker_type(agent.config_snapshot()) if agent else "", idempotency_key=idempotency_key or None,
        request_fingerprint=fingerprint, api_key=api_key,
    )
    # Without an Idempotency-Key the INSERT cannot conflict (the id is random), so it runs in
    # autocommit: no BEGIN/COMMIT round trips. With one, a savepoint keeps a lost race from
    # breaking the caller's transaction.
    try:
        with transaction.atomic() if idempotency_key else nullcontext():
            worker = _pick_worker(job.worker_type, now=now, fleet=fleet)
            if worker is None:
                _check_queue_room()
            job.created_at = timezone.now()
            if worker is not None:
                job.status, job.assigned_worker, job.assigned_at = JobStatus.ASSIGNED, worker, job.created_at
            insert_row(job, prepared=True)  # Job.save's SQL, written once: compiling it cost more than the INSERT
            # robust: a broker hiccup must not turn an accepted dispatch into an error; the
            # reaper re-routes an assigned job nobody claimed within the lease. In autocommit
            # on_commit runs at once, after the row is visible.
            transaction.on_commit(lambda: _dispatched(job, worker), robust=True)
    except IntegrityError:
        if not idempotency_key:
            raise
        # a concurrent request with the same key won the insert
        existing = Job.objects.filter(api_key=api_key, idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return _replay(existing, fingerprint)
    Job.session.related.set_cached_value(job, None)  # a job this request made has no session yet: no query to ask
    job.created = True  # type: ignore[attr-defined]
    return job


def _dispatched(job: Job, worker: Worker | None) -> None:
    """The new job is committed: announce it (pending, or assigned at once: one event), then
    send it to its worker or route it, so its event goes out before a worker can claim it."""
    JOB_MACHINE.announce(job)
    if worker is not None:
        _send(job.job_id, worker)
    else:  # no free slot when it was read: one more try, now the row is visible to the workers
        job_route(job_id=job.job_id, worker_type=job.worker_type)


def worker_candidates(*, now: Any = None, worker_type: str = "", fleet: list[Worker] | None = None) -> list[tuple[Worker, Candidate]]:
    """Online workers with a fresh heartbeat that serve `worker_type` and whose breaker lets a job through
    (of `fleet`, when the caller has read it already: `_agent_and_fleet`)."""
    now = now or timezone.now()
    if fleet is None:
        fleet = _fleet(_fresh_after(now))
    return [
        (w, Candidate(worker_id=w.worker_id, capacity=w.capacity, active=w.unfinished_jobs, load=w.load, weight=w.weight))
        for w in fleet
        if worker_serves(w, worker_type) and breaker.breaker_allows(w, now=now)
    ]


def _fresh_after(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.WORKER_OFFLINE_AFTER_SECONDS)


@lru_cache(maxsize=2)
def _fleet_sql(vendor: str) -> str:
    # written once: building this query through the ORM (annotate + Subquery) cost more than
    # running it, on every dispatch
    q = connection.ops.quote_name
    job, worker = q(Job._meta.db_table), q(Worker._meta.db_table)
    # the statuses are constants, written into the text, not parameters: the statement is
    # prepared, and a generic plan that does not know them counted each worker's unfinished jobs
    # by scanning all the jobs it ever ran instead of the few active ones by the status index
    active = ", ".join(_sql_literal(status) for status in ACTIVE_JOB_STATUSES)
    return (f"SELECT {select_columns(Worker, 'w')}, (SELECT COUNT(*) FROM {job} j WHERE j.assigned_worker_id = w.worker_id "
            f"AND j.status IN ({active})) AS unfinished_jobs FROM {worker} w "
            f"WHERE w.status = {_sql_literal(WorkerStatus.ONLINE)} AND w.last_heartbeat_at >= %s")


def _sql_literal(constant: str) -> str:
    assert constant.isidentifier(), constant  # a status name of ours, never a value from outside
    return f"'{constant}'"


def _fleet_params(fresh_after: datetime) -> list[Any]:
    return [connection.ops.adapt_datetimefield_value(fresh_after)]


def _fleet(fresh_after: datetime) -> list[Worker]:
    """The fleet with each worker's unfinished-job count (from the status index), in one query."""
    with prepared_cursor() as cursor:  # planned once per connection, as the key lookup it rides along with
        cursor.execute(_fleet_sql(connection.vendor), _fleet_params(fresh_after))
        rows = cursor.fetchall()
    fleet = []
    for row in rows:
        worker = model_from_row(Worker, row[:-1])
        worker.unfinished_jobs = row[-1]  # type: ignore[attr-defined]
        fleet.append(worker)
    return fleet


@lru_cache(maxsize=1)
def _agent_and_fleet_expressions() -> str:
    q = connection.ops.quote_name
    agent = q(Agent._meta.db_table)
    return (f"(SELECT ROW_TO_JSON(a) FROM (SELECT {select_columns(Agent, 'x')} FROM {agent} x "
            f"WHERE x.agent_id = %s AND x.state <> %s) a), "
            f"(SELECT JSON_AGG(ROW_TO_JSON(f)) FROM ({_fleet_sql('postgresql')}) f)")


def _agent_and_fleet_params(agent_id: str | None, now: datetime) -> list[Any]:
    return [agent_id, AgentState.DESTROYED, *_fleet_params(_fresh_after(now))]


class AgentAndFleetRead(AuthCompanion):
    """`_agent_and_fleet` as the companion of the API key lookup (PostgreSQL): the POST that
    dispatches to `agent_id` reads its agent and the fleet in the key's statement."""

    def __init__(self, agent_id: str, now: datetime) -> None:
        super().__init__(_agent_and_fleet_expressions(), _agent_and_fleet_params(agent_id, now))
        self.agent_id = agent_id

    def result(self, agent_id: str | None) -> tuple[Agent | None, list[Worker]] | None:
        """The agent and fleet it read, when it read them for `agent_id`; else None."""
        if self.values is None or agent_id != self.agent_id:
            return None
        return _agent_and_fleet_decoded(*self.values)


def agent_and_fleet_read(agent_id: Any) -> AgentAndFleetRead | None:
    """The companion read for a POST naming `agent_id`, where one can ride along (PostgreSQL)."""
    if connection.vendor != "postgresql" or not isinstance(agent_id, str) or not agent_id:
        return None
    return AgentAndFleetRead(agent_id, timezone.now())


def _agent_and_fleet(agent_id: str | None, now: datetime) -> tuple[Agent | None, list[Worker]]:
    """The job's agent (not destroyed; None when there is none) and the fleet as `_fleet` reads it.

    On PostgreSQL one statement, each part as JSON (the agent once, however large the fleet);
    elsewhere the two reads.
    """
    if connection.vendor != "postgresql":
        return Agent.objects.filter(agent_id=agent_id).exclude(state=AgentState.DESTROYED).first(), _fleet(_fresh_after(now))
    with prepared_cursor() as cursor:
        cursor.execute(f"SELECT {_agent_and_fleet_expressions()}", _agent_and_fleet_params(agent_id, now))
        agent_row, fleet_rows = cursor.fetchone()
    return _agent_and_fleet_decoded(agent_row, fleet_rows)


def _agent_and_fleet_decoded(agent_row: Any, fleet_rows: Any) -> tuple[Agent | None, list[Worker]]:
    fleet = []
    for row in json_value(fleet_rows) or []:
        worker = model_from_json_row(Worker, row)
        worker.unfinished_jobs = row["unfinished_jobs"]  # type: ignore[attr-defined]
        fleet.append(worker)
    return (None if agent_row is None else model_from_json_row(Agent, json_value(agent_row))), fleet


def _pick_worker(worker_type: str = "", *, now: datetime | None = None, fleet: list[Worker] | None = None) -> Worker | None:
    pool = worker_candidates(worker_type=worker_type, now=now, fleet=fleet)
    while pool:
        chosen = choose(settings.DISPATCH_STRATEGY, [c for _, c in pool])
        if chosen is None:
            return None
        worker = next(w for w, c in pool if c.worker_id == chosen.worker_id)
        if worker.circuit_state == CircuitState.CLOSED or breaker.breaker_try_half_open(worker_id=worker.worker_id):
            return worker
        pool = [(w, c) for w, c in pool if c.worker_id != chosen.worker_id]
    return None


def job_route(*, job_id: str, worker_type: str | None = None) -> str | None:
    """Assign a pending job to a worker and send it there; returns the worker id or None.

    None leaves the job pending (no capacity, or another dispatcher took it); the periodic
    `jobs_assign_pending` picks it up when capacity frees. `worker_type`: the job's, when the
    caller has it (the POST that made the job); otherwise read from the row.
    """
    if worker_type is None:
        worker_type = Job.objects.filter(pk=job_id).values_list("worker_type", flat=True).first()
        if worker_type is None:
            return None
    worker = _pick_worker(worker_type)
    if worker is None:
        return None
    job = Job(pk=job_id, status=JobStatus.PENDING)  # bare: its assignment event says only what it sets
    try:
        job_assign(job=job, worker_id=worker.worker_id)
    except IllegalTransition:
        return None
    _send(job_id, worker)
    return worker.worker_id


def _send(job_id: str, worker: Worker) -> None:
    send_to_worker(job_id, worker.worker_id)


def send_to_worker(job_id: str, worker_id: str) -> None:
    # as the task's own apply_async would (it ignores its result): no result-backend
    # subscription; the message send_task builds, without its per-message Python
    send_run_session(job_id, worker_id)


@lru_cache(maxsize=1)
def _take_next_sql() -> str:
    """One statement: the first waiting job this worker serves, assigned to it if the worker row
    is online, its circuit closed and it has a free slot; plus whether other jobs still wait,
    and whether the worker had no free slot at all (see take_next_statement)."""
    ctes, columns = take_next_statement()
    return f"WITH {ctes} SELECT {columns}"


def take_next_statement(*, freed: str = "0", closing: str = "FALSE") -> tuple[str, str]:
    """The CTEs and the select list of job_take_next's statement, for a caller that puts them
    after CTEs of its own (workers.job_end: the finishing job's UPDATE in the same statement).
    `freed`: SQL for how many of this worker's jobs those CTEs end (the statement's snapshot
    still counts them as running); `closing`: SQL that is true when they close its circuit.
    Parameters (pyformat): online, closed, worker, serves, now, take
    (false: take nothing, still say whether jobs wait).

    SKIP LOCKED: two workers freeing slots at once take two different jobs, never wait for
    each other. The trailing EXISTS sees the rows as they were before the UPDATE, so the job
    just taken is left out of it by id.
    """
    q = connection.ops.quote_name
    job, worker = q(Job._meta.db_table), q(Worker._meta.db_table)
    # the job statuses are constants in the text, not parameters (as in _fleet_sql): the
    # statement is prepared, and a generic plan blind to them counted the worker's active jobs by
    # a seq scan of every job, where the status index finds the few
    pending, assigned, running = (_sql_literal(s) for s in (JobStatus.PENDING, JobStatus.ASSIGNED, JobStatus.RUNNING))
    ctes = (
        f"slot AS (SELECT w.status = %(online)s AND (w.circuit_state = %(closed)s OR {closing}) AS may_take, "
        f"w.capacity <= (SELECT COUNT(*) FROM {job} a WHERE a.assigned_worker_id = %(worker)s "
        f"AND a.status IN ({assigned}, {running})) - ({freed}) AS no_slot FROM {worker} w "
        f"WHERE w.worker_id = %(worker)s AND %(take)s), "
        f"pick AS (SELECT j.job_id FROM {job} j WHERE j.status = {pending} "
        f"AND (j.worker_type = '' OR j.worker_type = ANY(%(serves)s)) "
        f"AND EXISTS (SELECT 1 FROM slot WHERE slot.may_take AND NOT slot.no_slot) "
        f"ORDER BY j.priority, j.created_at LIMIT 1 FOR UPDATE OF j SKIP LOCKED), "
        f"taken AS (UPDATE {job} SET status = {assigned}, assigned_worker_id = %(worker)s, assigned_at = %(now)s "
        f"WHERE job_id IN (SELECT job_id FROM pick) AND status = {pending} RETURNING job_id, attempts)"
    )
    columns = (
        f"(SELECT job_id FROM taken), (SELECT attempts FROM taken), "
        f"EXISTS (SELECT 1 FROM {job} o WHERE o.status = {pending} AND o.job_id NOT IN (SELECT job_id FROM taken)), "
        f"COALESCE((SELECT no_slot FROM slot), FALSE)"
    )
    return ctes, columns


def take_next_params(*, worker_id: str, serves: list[str], now: datetime, take: bool = True) -> dict[str, Any]:
    return {"online": WorkerStatus.ONLINE, "closed": CircuitState.CLOSED, "worker": worker_id,
            "serves": list(serves), "now": now, "take": take}


def job_taken(*, job_id: str, attempts: int, worker_id: str, now: datetime) -> None:
    """A waiting job was assigned to `worker_id` by the take-next statement: its fleet event,
    then its task to that worker's queue."""
    job = Job(pk=job_id, status=JobStatus.ASSIGNED, assigned_worker_id=worker_id, assigned_at=now, attempts=attempts)
    job._state.adding = False  # a stored row: its event carries the worker and attempt
    JOB_MACHINE.announce(job)
    send_to_worker(job_id, worker_id)


def job_take_next(*, worker_id: str, serves: list[str]) -> tuple[str | None, bool, bool]:
    """A slot just freed on `worker_id`: give it the first waiting job it serves, at once, and
    send that job to its queue. Returns (the job id or None, whether other jobs still wait,
    whether the worker had no free slot: the dispatcher filled it meanwhile).

    PostgreSQL only (one round trip, no fleet read, no race with the other dispatchers: the
    row lock is skipped, not waited for). Elsewhere returns (None, True, False): the caller
    routes the queue the general way.
    """
    if connection.vendor != "postgresql":
        return None, True, False
    now = timezone.now()
    with prepared_cursor() as cursor:
        cursor.execute(_take_next_sql(), take_next_params(worker_id=worker_id, serves=serves, now=now))
        job_id, attempts, more, full = cursor.fetchone()
    if job_id is None:
        return None, bool(more), bool(full)
    job_taken(job_id=job_id, attempts=attempts, worker_id=worker_id, now=now)
    return job_id, bool(more), bool(full)


def jobs_assign_pending(*, limit: int = 200) -> int:
    """Route pending jobs by priority, then age, until capacity runs out; returns how many."""
    routed = 0
    full: set[str] = set()  # worker types with no capacity left: their jobs wait, others go on
    for job_id, worker_type in Job.objects.pending().in_dispatch_order().values_list("job_id", "worker_type")[:limit]:
        if worker_type in full:
            continue
        if job_route(job_id=job_id) is None:
            if not worker_candidates(worker_type=worker_type):
                full.add(worker_type)
            continue
        routed += 1
    return routed


def job_cancel_request(*, job_id: str, actor: str = "", reason: str | None = None) -> Job:
    """Cancel a job in any unfinished state; its live session is told to end at once.

    Raises NotFound, or IllegalTransition (a Conflict) when the job has already finished.
    """
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"job '{job_id}' does not exist", field="job_id")
    reason = reason or (f"cancelled by {actor}" if actor else "cancelled")
    job_cancel(job=job, reason=reason)
    stop_job_session(job_id=job_id, reason=reason, actor=actor)
    return job
