"""A job's session, hosted: open its row, run the entry point, mirror its status, close it.

The worker claims the job, builds its JobContext and lends the loop the session runs on
(`workers.session_runner.run_agent_session`); the session's own life is here:

    session = session_open(job=job, agent_version=version)          # the row, `initializing`
    run = session_run(ctx, entry, config=config, on_loop=host.run)  # blocks until it is over
    reason = ctx.shutdown_reason or "completed"
    closed_as, read = session_close_reporting(session.session_id, error=run.error, reason=reason, session=session)
    error = run.error or session_failure(session.session_id, reason=reason, closed_as=closed_as)
    session_ended(ctx, error=error, reason=reason, read=read)       # report, metrics, log

Every status change goes through `sessions.services` (the session state machine); entry
points mirror the runtime's status with `session_mirror_status`. An entry point is
`async def entry(ctx: JobContext)`, named by WorkerOptions.entry_point (by default
DEFAULT_ENTRY_POINT, `sessions.entrypoints:agent_session`).
"""
from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from django.utils import timezone

from controlplane.errors import IllegalTransition, JobConfigurationError
from controlplane.sql_rows import insert_row
from sessions.call_report import ReportRead, session_end_reading_report, session_report_emit
from sessions.control import register_local, unregister_local
from sessions.control_listener import control_close, control_open
from sessions.job_context import DEFAULT_ENTRY_POINT, JobContext
from sessions.launch import ConfigError
from sessions.limits import SessionLimits, enforce_session_limits, session_limits
from sessions.models import LIVE_SESSION_STATUSES, AgentSession, SessionStatus
from runtime.transports.livekit import TransportAuthError
from sessions.metrics import SESSIONS_ENDED
from sessions.services import (
    SESSION_MACHINE,
    session_close_disconnected,
    session_detach,
    session_end,
    session_fail,
    session_move,
    session_transition,
)

log = logging.getLogger(__name__)
EntryPoint = Callable[[JobContext], Awaitable[Any]]

# Earlier names of the entry points: a deployed WORKER_ENTRY_POINT (or a worker started with
# an older default, `sessions.launch:run_job_session`) may still name them.
FORMER_ENTRY_POINTS = {
    "workers.entrypoints:agent_session": DEFAULT_ENTRY_POINT,
    "sessions.launch:run_job_session": DEFAULT_ENTRY_POINT,
    "workers.entrypoints:echo_session": "sessions.entrypoints:echo_session",
}
# after a shutdown request, how long the entry point gets to wind down before cancellation
SHUTDOWN_GRACE_SECONDS = 5.0
DRAIN_REASON = "worker_drain_timeout"  # a draining worker ended the session at its drain timeout
# session end reasons (from the transport) that mean the call was lost, not finished
ROOM_LOST_REASONS = {
    "room_deleted": "the LiveKit room was deleted while the call was on",
    "livekit_unreachable": "the LiveKit server could not be reached again after the connection dropped",
    "room_disconnected": "the LiveKit server disconnected the agent",
}


class EntryPointError(Exception):
    pass


def load_entry_point(spec: str) -> EntryPoint:
    module_name, _, attr = FORMER_ENTRY_POINTS.get(spec, spec).partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr or "entrypoint")
    except (ImportError, AttributeError) as exc:
        raise EntryPointError(f"entry point {spec!r} cannot be loaded: {exc}") from exc


# --- failures ---------------------------------------------------------------------------------


def is_job_fault(exc: BaseException) -> bool:
    """Errors that follow the job wherever it runs, never the hosting worker's fault: a config
    the runtime cannot run, LiveKit credentials the server refuses."""
    return isinstance(exc, (ConfigError, JobConfigurationError, TransportAuthError))


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, (JobConfigurationError, TransportAuthError)):
        return str(exc)  # already says what failed and what to check
    return f"{type(exc).__name__}: {exc}"


# --- opening ----------------------------------------------------------------------------------


class HostedJob(Protocol):
    """What opening a session reads of its job (a `workers.models.Job`, which the row links to)."""

    job_id: str
    attempts: int
    agent: Any
    room_name: str
    transport: str


def session_open(*, job: HostedJob, agent_version: int) -> AgentSession:
    """The job's session row, `initializing`. One row per job: a re-dispatched attempt detaches
    the earlier attempt's row (failing it first if it was still live)."""
    previous = AgentSession.objects.filter(job=job).first() if job.attempts > 1 else None
    if previous is not None:
        if previous.status in LIVE_SESSION_STATUSES:
            try:
                session_fail(session=previous, error="the worker hosting this session was lost; job re-dispatched")
            except IllegalTransition:
                pass
        session_detach(session=previous, user_data={**previous.user_data, "job_id": job.job_id,
                                                    "attempt": job.attempts - 1})
    session = AgentSession(
        job=job, agent=job.agent, agent_version=agent_version, room_id=job.room_name, transport=job.transport,
        user_data={"job_id": job.job_id, "attempt": job.attempts}, started_at=timezone.now(),
    )
    # Model.save's INSERT, written once (its per-call preparation cost more than the statement);
    # started_at set here, as auto_now_add would; no receiver listens to AgentSession saves
    insert_row(session)
    SESSION_MACHINE.announce(session)  # created, not transitioned: the fleet hears of it here
    return session


# --- running ----------------------------------------------------------------------------------


async def host_session(ctx: JobContext, entry: EntryPoint, limits: SessionLimits | None = None) -> None:
    """Run the entry point on this loop until it returns, shutdown is requested or a limit passes."""
    ctx.bind_loop(asyncio.get_running_loop())
    if limits is not None:
        ctx.create_task(enforce_session_limits(ctx, limits), name=f"limits-{ctx.session_id}")
    # operator commands sent to this worker for this session reach it from now on
    control_open(ctx)
    session_task = asyncio.ensure_future(entry(ctx))
    shutdown = asyncio.ensure_future(ctx.wait_for_shutdown())
    try:
        await asyncio.wait({session_task, shutdown}, return_when=asyncio.FIRST_COMPLETED)
        if not session_task.done():
            done, _ = await asyncio.wait({session_task}, timeout=SHUTDOWN_GRACE_SECONDS)
            if not done:
                ctx.log.warning("entry point did not return %.0fs after shutdown; cancelling it", SHUTDOWN_GRACE_SECONDS)
                session_task.cancel()
                await asyncio.wait({session_task})
        if not session_task.cancelled() and session_task.exception() is not None:
            raise session_task.exception()  # type: ignore[misc]
    finally:
        control_close(ctx)
        shutdown.cancel()
        if not session_task.done():
            session_task.cancel()
        await ctx.aclose()


@dataclass(frozen=True)
class SessionRun:
    error: str | None = None
    worker_fault: bool = False  # the failure is the hosting worker's (it counts towards its breaker)


def session_run(ctx: JobContext, entry: EntryPoint, *, config: dict[str, Any],
                on_loop: Callable[[Coroutine[Any, Any, Any]], Any]) -> SessionRun:
    """Host the session until it is over, on the loop `on_loop` runs coroutines on (the worker's
    SessionHost); operator commands sent to this process reach it meanwhile."""
    register_local(ctx)
    try:
        on_loop(host_session(ctx, entry, session_limits(config)))
    except Exception as exc:  # noqa: BLE001 - any failure becomes the session's error
        error = describe_failure(exc)
        if is_job_fault(exc):
            ctx.log.error("session failed: %s", error)
            return SessionRun(error)
        ctx.log.exception("session failed")
        return SessionRun(error, worker_fault=True)
    finally:
        unregister_local(ctx)
    return SessionRun()


PLAIN_MOVES = frozenset({SessionStatus.CONNECTED, SessionStatus.ACTIVE, SessionStatus.PAUSED})


def session_mirror_status(session_id: str, status: str, reason: str = "", *, final: bool = True,
                          job_id: str | None = None) -> None:
    """The runtime's status, into the row. A `disconnected` before the session's stop began
    (`final=False`) is a transport reconnecting, not the end. With the session's `job_id` a
    plain move (connected / active / paused) is one conditional UPDATE, the row not read."""
    if status == SessionStatus.DISCONNECTED and final:
        return  # the worker closes the row with the end reason once the entry point returns
    if job_id is not None and status in PLAIN_MOVES:
        session_move(session_id=session_id, job_id=job_id, status=status)  # lost or already there: nothing to do
        return
    session = AgentSession.objects.filter(pk=session_id).first()
    if session is None or session.status == status:
        return
    try:
        if status == SessionStatus.ERROR:
            session_fail(session=session, error=reason or "runtime error")
        elif status == SessionStatus.DISCONNECTED:
            session_transition(session=session, status=status, ended_at=None)
        else:
            session_transition(session=session, status=status)
    except IllegalTransition:
        return


# --- closing ----------------------------------------------------------------------------------


def session_close(session_id: str, *, error: str | None, reason: str,
                  session: AgentSession | None = None) -> str | None:
    """End a live (or reconnecting) session with its error or end reason. Idempotent: a row
    already closed is left as it is. Returns the status this call wrote when it is known to
    be the row's final one (`error`, or `disconnected` with the end), else None.

    `session`, the row as this process opened it: the usual end (from connected / active /
    paused, or an error) is then one conditional UPDATE without reading the row first."""
    if session is not None:
        closed_as = session_end(session=session, error=error, reason=reason)
        if closed_as is not None:
            return closed_as
    return _close_read_first(session_id, error=error, reason=reason)


def session_close_reporting(session_id: str, *, error: str | None, reason: str,
                            session: AgentSession) -> tuple[str | None, ReportRead | None]:
    """`session_close` for a session whose end-of-call report follows (`session_ended`): the
    usual end also reads what the report needs, in the same statement. Returns (what
    session_close returns, that read or None: the report then reads it itself)."""
    closed_as, read = session_end_reading_report(session=session, error=error, reason=reason)
    if closed_as is not None:
        return closed_as, read
    return _close_read_first(session_id, error=error, reason=reason), None


def _close_read_first(session_id: str, *, error: str | None, reason: str) -> str | None:
    session = AgentSession.objects.filter(pk=session_id).first()
    if session is None:
        return None
    # disconnected without an end: its transport was reconnecting when the session ended
    reconnecting = session.status == SessionStatus.DISCONNECTED and session.ended_at is None
    if session.status not in LIVE_SESSION_STATUSES and not reconnecting:
        if error and session.status == SessionStatus.ERROR:
            _state_the_cause(session_id, error)
        return None
    try:
        if error:
            session_fail(session=session, error=error)
            return SessionStatus.ERROR
        if reconnecting:
            session_close_disconnected(session=session, reason=reason)
            return None
        if session.status == SessionStatus.INITIALIZING:  # the entry point never reported a connection
            session_transition(session=session, status=SessionStatus.CONNECTED)
        session_transition(session=session, status=SessionStatus.DISCONNECTED, end_reason=reason[:255])
        return SessionStatus.DISCONNECTED
    except IllegalTransition:
        if error:  # the status mirror failed the row meanwhile (its last write may land after ours began)
            _state_the_cause(session_id, error)
        return None


def _state_the_cause(session_id: str, error: str) -> None:
    """The runtime's error state is mirrored into the row without its cause ("runtime error");
    the exception that ended the session is the job's failure reason: the row says it too."""
    AgentSession.objects.filter(pk=session_id, status=SessionStatus.ERROR).exclude(error=error).update(error=error[:4000])


def session_failure(session_id: str, *, reason: str, closed_as: str | None = None) -> str | None:
    """Why a session that ran without an exception still failed its job: the call was cut, or
    the runtime ended it in its error state itself. None when it did its work. `closed_as`:
    what `session_close` wrote (`disconnected`: this process ended it, the row need not be read)."""
    if reason in ROOM_LOST_REASONS:
        return f"{reason}: {ROOM_LOST_REASONS[reason]}"
    if closed_as == SessionStatus.DISCONNECTED:
        return None
    final = AgentSession.objects.filter(pk=session_id).values_list("status", "error").first()
    if final and final[0] == SessionStatus.ERROR:
        return f"session error: {final[1] or 'unknown'}"
    return None


def session_report(session_id: str, read: ReportRead | None = None) -> None:
    """The end-of-call report, once the row holds the end reason (and the recording is saved);
    `read`: what the close read for it (session_close_reporting)."""
    try:
        session_report_emit(session_id=session_id, read=read)
    except Exception:  # noqa: BLE001 - a report must not turn a finished call into a failed job
        log.exception("end-of-call report of %s not stored", session_id)


def session_count_end(outcome: str) -> None:
    try:
        SESSIONS_ENDED.labels(outcome).inc()
    except Exception:  # noqa: BLE001 - metrics never break a session
        log.debug("session outcome not counted", exc_info=True)


def session_ended(ctx: JobContext, *, error: str | None, reason: str, read: ReportRead | None = None) -> None:
    """After the row is closed: the end-of-call report, the outcome counted, the log line."""
    session_report(ctx.session_id, read)
    session_count_end("error" if error else reason if reason in ("completed", DRAIN_REASON) else "ended")
    ctx.log.info("session over: %s", error or reason)


def job_session_lost(*, job_id: str, reason: str) -> None:
    """The worker hosting a job's live session is gone (the reaper took the job back): fail the
    session with the reason and send its end-of-call report, which that worker never will."""
    session = AgentSession.objects.live().filter(job_id=job_id).first()
    if session is None:
        return
    try:
        session_fail(session=session, error=reason)
    except IllegalTransition:  # it ended meanwhile
        return
    session_report(session.session_id)
