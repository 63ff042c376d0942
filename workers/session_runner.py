"""Worker side of a job: claim it, run it by type, record the outcome.

For an agent session: create the AgentSession row, build the JobContext, run the entry
point (WorkerOptions.entry_point, `sessions.launch:run_job_session` by default) on the
SessionHost loop, listen for operator commands meanwhile, and close the session and the
job with one outcome. `run_claimed_job` blocks the calling (Celery pool) thread until the
session is over.
"""
from __future__ import annotations

import asyncio
import importlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.utils import timezone

from agents.services import agent_version_config
from controlplane.errors import IllegalTransition, JobConfigurationError
from sessions.call_report import session_report_emit
from sessions.control import command_listener, register_local, unregister_local
from sessions.job_context import JobContext
from sessions.launch import ConfigError
from sessions.runtime.transports.livekit import TransportAuthError
from sessions.models import LIVE_SESSION_STATUSES, AgentSession, SessionStatus
from sessions.services import SESSION_MACHINE, session_close_disconnected, session_fail, session_transition
from workers import breaker
from workers.claims import job_claim, job_finish, job_release
from workers.db_retry import TRANSIENT_DATABASE_ERRORS, retry_database_write
from workers.models import Job, JobType, Transport
from workers.node import node
from workers.session_host import host
from workers.session_limits import SessionLimits, enforce_session_limits, session_limits

log = logging.getLogger(__name__)
EntryPoint = Callable[[JobContext], Awaitable[Any]]
DRAIN_REASON = "worker_drain_timeout"
_listeners: set[asyncio.Task[None]] = set()
# after a shutdown request, how long the entry point gets to wind down before cancellation
SHUTDOWN_GRACE_SECONDS = 5.0


class EntryPointError(Exception):
    pass


def load_entry_point(spec: str) -> EntryPoint:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr or "entrypoint")
    except (ImportError, AttributeError) as exc:
        raise EntryPointError(f"entry point {spec!r} cannot be loaded: {exc}") from exc


def run_job(*, job_id: str, worker_id: str) -> str:
    """What `run_session` does. Returns a short outcome word for the task result."""
    if node.draining:
        # refuse: hand the job back and let the dispatcher pick another worker
        if job_release(job_id=job_id, worker_id=worker_id, reason=f"worker {worker_id} is draining"):
            from workers.dispatch import job_route

            job_route(job_id=job_id)
        return "refused"
    job = job_claim(job_id=job_id, worker_id=worker_id)
    if job is None:
        log.info("job %s: claim taken or job no longer assigned here; duplicate delivery ignored", job_id)
        return "duplicate"
    # the heartbeat renews the lease until the outcome is stored, not only while the session lives
    with node.lease_held(job.job_id):
        return run_claimed_job(job=job, worker_id=worker_id)


def run_claimed_job(*, job: Job, worker_id: str) -> str:
    """Run a claimed job by type and record one outcome.

    A handler returns None (success) or a reason the job itself failed (its config, its
    tool, its input): the worker's circuit breaker ignores those. An exception is a failure
    of this worker (it cannot load its entry point, a session crashed on it) and counts
    towards opening its circuit.
    """
    handler = JOB_HANDLERS.get(job.job_type)
    failure: str | None = None
    worker_fault = False
    try:
        if handler is None:
            raise EntryPointError(f"no handler for job type {job.job_type!r}")
        failure = handler(job, worker_id)
    except Exception as exc:  # noqa: BLE001 - any failure becomes the job's reason
        if not isinstance(exc, WorkerFault):
            log.exception("job %s failed", job.job_id)
        failure = str(exc) if isinstance(exc, WorkerFault) else f"{type(exc).__name__}: {exc}"
        worker_fault = True
    # the breaker first: whoever sees the job finished also sees the worker's circuit updated
    _record_breaker(worker_id, worker_fault=worker_fault, failed=bool(failure))
    # retried through a database outage (the caller holds the lease meanwhile): a job left
    # `running` would be re-dispatched once its lease expired, starting an ended call again
    recorded = retry_database_write(f"job {job.job_id}: recording its outcome",
                                    lambda: job_finish(job_id=job.job_id, worker_id=worker_id, failure=failure))
    _route_waiting_jobs()
    if not recorded:
        return "superseded"
    return "failed" if failure else "completed"


def _record_breaker(worker_id: str, *, worker_fault: bool, failed: bool) -> None:
    try:
        if worker_fault:
            breaker.breaker_record_failure(worker_id=worker_id)
        elif not failed:
            breaker.breaker_record_success(worker_id=worker_id)
    except TRANSIENT_DATABASE_ERRORS:  # the circuit is advisory; the job's outcome is not
        log.warning("circuit breaker not updated for %s: database unavailable", worker_id)


def _route_waiting_jobs() -> None:
    """A slot just freed: hand it to the queue now rather than at the next maintenance tick."""
    try:
        if Job.objects.pending().exists():
            from workers.dispatch import jobs_assign_pending

            jobs_assign_pending(limit=10)
    except Exception:  # noqa: BLE001 - the periodic loop will do it; the job's outcome stands
        log.warning("could not route waiting jobs", exc_info=True)


class WorkerFault(Exception):
    """A job failed because of the worker hosting it (after its session was closed)."""


def _is_job_fault(exc: BaseException) -> bool:
    """Errors that follow the job wherever it runs, never the hosting worker's fault: a config
    the runtime cannot run, LiveKit credentials the server refuses."""
    return isinstance(exc, (ConfigError, JobConfigurationError, TransportAuthError))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (JobConfigurationError, TransportAuthError)):
        return str(exc)  # already says what failed and what to check
    return f"{type(exc).__name__}: {exc}"


# --- agent sessions -------------------------------------------------------------------------


def _create_session(job: Job, agent_version: int) -> AgentSession:
    # One session row per job: a re-dispatched attempt detaches the earlier attempt's row.
    previous = AgentSession.objects.filter(job=job).first() if job.attempts > 1 else None
    if previous is not None:
        if previous.status in LIVE_SESSION_STATUSES:
            try:
                session_fail(session=previous, error="the worker hosting this session was lost; job re-dispatched")
            except IllegalTransition:
                pass
        AgentSession.objects.filter(pk=previous.pk).update(
            job=None, user_data={**previous.user_data, "job_id": job.job_id, "attempt": job.attempts - 1}
        )
    session = AgentSession.objects.create(
        job=job, agent=job.agent, agent_version=agent_version, room_id=job.room_name, transport=job.transport,
        user_data={"job_id": job.job_id, "attempt": job.attempts},
    )
    SESSION_MACHINE.announce(session)
    return session


def build_job_context(job: Job, session: AgentSession, config: dict[str, Any], worker_id: str) -> JobContext:
    ctx = JobContext(
        job_id=job.job_id, session_id=session.session_id, agent_id=job.agent.agent_id if job.agent else "",
        agent_version=session.agent_version, agent_config=config, room=dict(job.room or {"name": job.room_name}),
        transport=job.transport, participant_identity=job.participant_identity, participants=list(job.participants or []),
        metadata=dict(job.metadata or {}), worker_id=worker_id, attempt=job.attempts,
    )
    if job.transport == Transport.LIVEKIT:
        from workers.livekit import prepare_room

        ctx.livekit_url, ctx.livekit_token, room = prepare_room(job=job)
        ctx.room.update(room)
    return ctx


async def host_session(ctx: JobContext, entry: EntryPoint, limits: SessionLimits | None = None) -> None:
    """Run the entry point on the host loop until it returns, shutdown is requested or a limit passes."""
    ctx.bind_loop(asyncio.get_running_loop())
    if limits is not None:
        ctx.create_task(enforce_session_limits(ctx, limits), name=f"limits-{ctx.session_id}")
    # not one of the context's tasks: a cancelled channel-layer receive can take seconds to
    # unwind, and the session's end must not wait for it
    listener = asyncio.get_running_loop().create_task(command_listener(ctx), name=f"control-{ctx.session_id}")
    _listeners.add(listener)
    listener.add_done_callback(_listeners.discard)
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
        listener.cancel()
        shutdown.cancel()
        if not session_task.done():
            session_task.cancel()
        await ctx.aclose()


def _observe_dispatch_latency(job: Job) -> None:
    """Dispatch accepted → session started on this worker (the bench measures the same span)."""
    try:
        from workers.metrics import observe_dispatch_latency

        observe_dispatch_latency((timezone.now() - job.created_at).total_seconds())
    except Exception:  # noqa: BLE001 - metrics never break a session
        log.debug("dispatch latency not recorded", exc_info=True)


def _count_session_end(outcome: str) -> None:
    try:
        from sessions.metrics import SESSIONS_ENDED

        SESSIONS_ENDED.labels(outcome).inc()
    except Exception:  # noqa: BLE001
        log.debug("session outcome not counted", exc_info=True)


def _close_session(session_id: str, *, error: str | None, reason: str) -> None:
    session = AgentSession.objects.filter(pk=session_id).first()
    if session is None:
        return
    # disconnected without an end: its transport was reconnecting when the session ended
    reconnecting = session.status == SessionStatus.DISCONNECTED and session.ended_at is None
    if session.status not in LIVE_SESSION_STATUSES and not reconnecting:
        return
    try:
        if error:
            session_fail(session=session, error=error)
        elif reconnecting:
            session_close_disconnected(session=session, reason=reason)
        else:
            if session.status == SessionStatus.INITIALIZING:  # the entry point never reported a connection
                session_transition(session=session, status=SessionStatus.CONNECTED)
            session_transition(session=session, status=SessionStatus.DISCONNECTED, end_reason=reason[:255])
    except IllegalTransition:
        return


def _emit_call_report(session_id: str) -> None:
    """The end-of-call report, once the row holds the end reason (and the recording is saved)."""
    try:
        session_report_emit(session_id=session_id)
    except Exception:  # noqa: BLE001 - a report must not turn a finished call into a failed job
        log.exception("end-of-call report of %s not stored", session_id)


# session end reasons (from the transport) that mean the call was lost, not finished
ROOM_LOST_REASONS = {
    "room_deleted": "the LiveKit room was deleted while the call was on",
    "livekit_unreachable": "the LiveKit server could not be reached again after the connection dropped",
    "room_disconnected": "the LiveKit server disconnected the agent",
}


def _end_room(job: Job) -> None:
    if job.transport != Transport.LIVEKIT:
        return
    from workers.livekit import room_delete_on_end

    fresh = Job.objects.filter(pk=job.pk).first()  # prepare_room stored what it created
    if fresh is not None:
        room_delete_on_end(job=fresh)


def run_agent_session(job: Job, worker_id: str) -> str | None:
    """Host one agent session; returns a failure reason or None."""
    options = node.options
    entry = load_entry_point(options.entry_point if options else "workers.entrypoints:agent_session")
    if job.agent is None:
        return "agent session job without an agent"
    config = getattr(job, "version_config", None)  # read with the claim
    if config is not None and job.agent_version:
        version = job.agent_version
    else:
        version, config = agent_version_config(agent=job.agent, version=job.agent_version)
    session = _create_session(job, version)
    _observe_dispatch_latency(job)
    try:
        ctx = build_job_context(job, session, config, worker_id)
    except Exception as exc:  # noqa: BLE001 - the session must not stay `initializing`
        error = _describe(exc)
        log.error("[job=%s session=%s] session could not start: %s", job.job_id, session.session_id, error,
                  exc_info=not _is_job_fault(exc))
        _close_session(session.session_id, error=error, reason="error")
        _count_session_end("error")
        _end_room(job)
        if not _is_job_fault(exc):
            raise WorkerFault(error) from exc
        return error
    node.track(ctx)
    register_local(ctx)
    error: str | None = None
    worker_fault = False
    # this pool thread only waits while the session lives: give its database connection back
    # (a node hosts hundreds of sessions; PostgreSQL allows ~100 connections by default)
    if not connection.in_atomic_block:
        connection.close()
    try:
        host.run(host_session(ctx, entry, session_limits(config)))
    except Exception as exc:  # noqa: BLE001
        error = _describe(exc)
        worker_fault = not _is_job_fault(exc)
        if worker_fault:
            ctx.log.exception("session failed")
        else:
            ctx.log.error("session failed: %s", error)
    finally:
        unregister_local(ctx)
        node.untrack(ctx)
    reason = ctx.shutdown_reason or "completed"
    # idempotent (a conditional transition), so a retry after a lost commit is harmless
    retry_database_write(f"session {session.session_id}: closing it",
                         lambda: _close_session(session.session_id, error=error, reason=reason))
    _end_room(job)
    if error is None and reason in ROOM_LOST_REASONS:  # the call was cut: the job did not do its work
        error = f"{reason}: {ROOM_LOST_REASONS[reason]}"
    if error is None:  # the runtime may have ended the session in its error state itself
        final = retry_database_write(
            f"session {session.session_id}: reading its outcome",
            lambda: AgentSession.objects.filter(pk=session.session_id).values_list("status", "error").first(),
        )
        if final and final[0] == SessionStatus.ERROR:
            error = f"session error: {final[1] or 'unknown'}"
    _emit_call_report(session.session_id)
    _count_session_end("error" if error else reason if reason in ("completed", DRAIN_REASON) else "ended")
    ctx.log.info("session over: %s", error or reason)
    if error and worker_fault:
        raise WorkerFault(error)
    return error


# --- the other job types ----------------------------------------------------------------------


def run_tool_execution(job: Job, worker_id: str) -> str | None:
    """metadata {"tool": name, "arguments": {...}} → metadata["result"] = {output, error_kind}."""
    from agents.tools.remote import execute_remote_call

    name = job.metadata.get("tool")
    if not isinstance(name, str) or not name:
        return "tool_execution job needs metadata.tool (the tool name)"
    arguments = job.metadata.get("arguments", {})
    result = execute_remote_call(name, json.dumps(arguments), {"call_id": job.job_id, "execution_id": job.job_id})
    Job.objects.filter(pk=job.pk).update(metadata={**job.metadata, "result": result})
    if result.get("error_kind"):
        return f"tool {name} failed ({result['error_kind']}): {result.get('output', '')}"
    return None


def run_audio_processing(job: Job, worker_id: str) -> str | None:
    """metadata {"pcm16_base64", "sample_rate"} → duration, level and speech share in metadata["result"]."""
    import base64

    import numpy as np

    from agents.provider_configs import WebRTCVADConfig
    from sessions.runtime.vad import VAD

    raw = job.metadata.get("pcm16_base64")
    rate = job.metadata.get("sample_rate", 16000)
    if not isinstance(raw, str) or rate not in (8000, 16000, 32000, 48000):
        return "audio_processing job needs metadata.pcm16_base64 and sample_rate 8000/16000/32000/48000"
    try:
        samples = np.frombuffer(base64.b64decode(raw, validate=True), dtype=np.int16)
    except ValueError as exc:
        return f"audio_processing: bad audio payload: {exc}"
    vad = VAD(WebRTCVADConfig(frame_ms=30), sample_rate=rate)
    frames = len(samples) // vad.frame_samples
    speech_frames = utterances = 0
    for i in range(frames):
        transition = vad.process(np.ascontiguousarray(samples[i * vad.frame_samples:(i + 1) * vad.frame_samples]))
        if transition is not None and transition.kind == "start":
            utterances += 1
        speech_frames += vad.speaking
    level = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0
    result = {"duration_ms": round(len(samples) * 1000 / rate, 1), "rms": round(level, 2), "frames": frames, "speech_frames": speech_frames, "utterances": utterances}
    Job.objects.filter(pk=job.pk).update(metadata={**job.metadata, "result": result})
    return None


JOB_HANDLERS: dict[str, Callable[[Job, str], str | None]] = {
    JobType.AGENT_SESSION: run_agent_session,
    JobType.TOOL_EXECUTION: run_tool_execution,
    JobType.AUDIO_PROCESSING: run_audio_processing,
}
