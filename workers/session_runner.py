"""Worker side of a job: claim it, run its type's handler, update the breaker, record the outcome.

An agent session is hosted by `sessions.hosting` (its row, the entry point named by
WorkerOptions.entry_point, its status and its end); this side gives it the job's context
and the node's SessionHost loop, tracks it for the heartbeat and drain, and prepares and
removes the job's LiveKit room. `run_claimed_job` blocks the calling (Celery pool) thread
until the job is over.
"""
from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from django.db import connection
from django.utils import timezone

from controlplane.broadcaster import broadcasts_together, hand_over_together
from runtime.provider_configs import WebRTCVADConfig
from agents.services import agent_version_config
from agents.tools.remote import execute_remote_call
from sessions.hosting import (
    EntryPointError,
    describe_failure,
    is_job_fault,
    load_entry_point,
    session_close,
    session_close_reporting,
    session_count_end,
    session_ended,
    session_failure,
    session_open,
    session_run,
)
from sessions.job_context import DEFAULT_ENTRY_POINT, JobContext
from sessions.models import AgentSession
from runtime.vad import VAD
from workers import breaker
from workers.claims import job_claim, job_release
from workers.db_retry import TRANSIENT_DATABASE_ERRORS, retry_database_write
from workers.dispatch import job_route, jobs_assign_pending
from workers.job_end import JobEnd, job_end
from workers.livekit import prepare_room, room_delete_on_end
from workers.metrics import observe_dispatch_latency
from workers.models import Job, JobType, Transport
from workers.node import node
from workers.session_host import host
from workers.worker_types import served_types

log = logging.getLogger(__name__)


def run_job(*, job_id: str, worker_id: str) -> str:
    """What `run_session` does. Returns a short outcome word for the task result."""
    # the live view's sends of each phase of the job (claim and opening; close, report and end)
    # leave in one broadcaster hand-over each: run_agent_session hands the first over once the
    # session's row is open, a database retry before it waits (workers.db_retry)
    with broadcasts_together():
        if node.draining:
            # refuse: hand the job back and let the dispatcher pick another worker
            if job_release(job_id=job_id, worker_id=worker_id, reason=f"worker {worker_id} is draining"):
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
        if handler is not run_agent_session:  # it sends the claim's event with its session's opening
            hand_over_together()  # a tool may run for minutes: the claim is not held that long
        failure = handler(job, worker_id)
    except Exception as exc:  # noqa: BLE001 - any failure becomes the job's reason
        if not isinstance(exc, WorkerFault):
            log.exception("job %s failed", job.job_id)
        failure = str(exc) if isinstance(exc, WorkerFault) else f"{type(exc).__name__}: {exc}"
        worker_fault = True
    if worker_fault:  # before the outcome: whoever sees the job failed also sees the circuit updated
        _record_breaker_failure(worker_id)
    # a success closes the circuit in the same statement as the outcome (workers.job_end);
    # this worker takes the next waiting job it serves into the freed slot in it too
    may_take = not worker_fault and not (node.draining or node.stopping) and node.worker_id == worker_id
    # retried through a database outage (the caller holds the lease meanwhile): a job left
    # `running` would be re-dispatched once its lease expired, starting an ended call again
    end = retry_database_write(
        f"job {job.job_id}: recording its outcome",
        lambda: job_end(job_id=job.job_id, worker_id=worker_id, failure=failure, close_circuit=not failure,
                        take_next=may_take, serves=_served_here() if may_take else []))
    _route_waiting_jobs(end)
    if not end.recorded:
        return "superseded"
    return "failed" if failure else "completed"


def _record_breaker_failure(worker_id: str) -> None:
    try:
        breaker.breaker_record_failure(worker_id=worker_id)
    except TRANSIENT_DATABASE_ERRORS:  # the circuit is advisory; the job's outcome is not
        log.warning("circuit breaker not updated for %s: database unavailable", worker_id)


def _route_waiting_jobs(end: JobEnd) -> None:
    """A slot just freed: hand it to the queue now rather than at the next maintenance tick.

    This worker took the first waiting job it serves itself, with its job's end (no fleet read).
    When it took none although jobs wait (it serves none of them, it is draining, its circuit
    is not closed after a fault of its own) the queue is routed across the fleet. When it took
    one, the others wait for the next freed slot (or the maintenance round). So do they when
    the slot was already filled again (a new dispatch went straight to this worker, as in a
    burst): the fleet is full, and routing across it would only read it to find that out.
    """
    try:
        if end.taken is None and not end.full and (end.more if end.more is not None else Job.objects.pending().exists()):
            jobs_assign_pending(limit=10)
    except Exception:  # noqa: BLE001 - the periodic loop will do it; the job's outcome stands
        log.warning("could not route waiting jobs", exc_info=True)


def _served_here() -> list[str]:
    options = node.options
    return served_types(options.worker_type, options.serves) if options else []


class WorkerFault(Exception):
    """A job failed because of the worker hosting it (after its session was closed)."""


# --- agent sessions -------------------------------------------------------------------------


def build_job_context(job: Job, session: AgentSession, config: dict[str, Any], worker_id: str) -> JobContext:
    ctx = JobContext(
        job_id=job.job_id, session_id=session.session_id, agent_id=job.agent.agent_id if job.agent else "",
        agent_version=session.agent_version, agent_config=config, room=dict(job.room or {"name": job.room_name}),
        transport=job.transport, participant_identity=job.participant_identity, participants=list(job.participants or []),
        metadata=dict(job.metadata or {}), worker_id=worker_id, attempt=job.attempts,
    )
    if job.transport == Transport.LIVEKIT:
        ctx.livekit_url, ctx.livekit_token, room = prepare_room(job=job)
        ctx.room.update(room)
    return ctx


def _observe_dispatch_latency(job: Job) -> None:
    """Dispatch accepted → session started on this worker (the bench measures the same span)."""
    try:
        observe_dispatch_latency((timezone.now() - job.created_at).total_seconds())
    except Exception:  # noqa: BLE001 - metrics never break a session
        log.debug("dispatch latency not recorded", exc_info=True)


def _end_room(job: Job) -> None:
    if job.transport != Transport.LIVEKIT:
        return
    fresh = Job.objects.filter(pk=job.pk).first()  # prepare_room stored what it created
    if fresh is not None:
        room_delete_on_end(job=fresh)


def run_agent_session(job: Job, worker_id: str) -> str | None:
    """Host one agent session on this node; returns a failure reason or None."""
    options = node.options
    entry = load_entry_point(options.entry_point if options else DEFAULT_ENTRY_POINT)
    if job.agent is None:
        return "agent session job without an agent"
    config = getattr(job, "version_config", None)  # read with the claim
    if config is not None and job.agent_version:
        version = job.agent_version
    else:
        version, config = agent_version_config(agent=job.agent, version=job.agent_version)
    session = session_open(job=job, agent_version=version)
    hand_over_together()  # the claim's and the opening's live view, before the room is prepared (LiveKit: a request)
    _observe_dispatch_latency(job)
    try:
        ctx = build_job_context(job, session, config, worker_id)
    except Exception as exc:  # noqa: BLE001 - the session must not stay `initializing`
        error = describe_failure(exc)
        log.error("[job=%s session=%s] session could not start: %s", job.job_id, session.session_id, error,
                  exc_info=not is_job_fault(exc))
        session_close(session.session_id, error=error, reason="error", session=session)
        session_count_end("error")
        _end_room(job)
        if not is_job_fault(exc):
            raise WorkerFault(error) from exc
        return error
    node.track(ctx)
    # this pool thread only waits while the session lives: give its database connection back
    # (a node hosts hundreds of sessions; PostgreSQL allows ~100 connections by default)
    if not connection.in_atomic_block:
        connection.close()
    try:
        run = session_run(ctx, entry, config=config, on_loop=host.run)
    finally:
        node.untrack(ctx)
    reason = ctx.shutdown_reason or "completed"
    # idempotent (a conditional transition), so a retry after a lost commit is harmless
    closed_as, read = retry_database_write(
        f"session {session.session_id}: closing it",
        lambda: session_close_reporting(session.session_id, error=run.error, reason=reason, session=session))
    _end_room(job)
    error = run.error or retry_database_write(
        f"session {session.session_id}: reading its outcome",
        lambda: session_failure(session.session_id, reason=reason, closed_as=closed_as))
    session_ended(ctx, error=error, reason=reason, read=read)
    if error and run.worker_fault:
        raise WorkerFault(error)
    return error


# --- the other job types ----------------------------------------------------------------------


def run_tool_execution(job: Job, worker_id: str) -> str | None:
    """metadata {"tool": name, "arguments": {...}} → metadata["result"] = {output, error_kind}."""
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
