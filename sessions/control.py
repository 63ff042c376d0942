"""Operator commands to a live session, wherever it runs.

`send_session_command` (called by the API and the dashboard) reaches the worker hosting the
session (its job's assigned worker) through that worker's channel layer group
`worker-control-<worker_id>`, naming the session in the message; the worker process's one
listener (`sessions.control_listener`) hands each command to that session's JobContext,
then confirms on the command's reply channel: the sender answers only once the command
reached the session (else Unavailable, 503, with the reason). When the session runs in this
very process (the embedded mode, whose in-memory channel layer does not cross threads' event
loops) the command is handed over directly.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

from controlplane.errors import Conflict, DomainError, NotFound, Unavailable
from sessions.job_context import JobContext
from sessions.models import LIVE_SESSION_STATUSES, AgentSession


@dataclass(frozen=True)
class CommandSpec:
    needs_text: bool = False
    # the session state machine: only an active session pauses, only a paused one resumes
    required_status: str | None = None


# the operator commands a live session takes; a new one is one line here plus its handler
# registered on the JobContext (`ctx.on_command(name, handler)`) by the entry point
COMMAND_SPECS: dict[str, CommandSpec] = {
    "say": CommandSpec(needs_text=True),
    "interrupt": CommandSpec(),
    "end": CommandSpec(),
    "message": CommandSpec(needs_text=True),
    "pause": CommandSpec(required_status="active"),
    "resume": CommandSpec(required_status="paused"),
}
COMMANDS = tuple(COMMAND_SPECS)
MAX_TEXT = 10_000
# Worker.status of a dead worker (workers.models.WorkerStatus.OFFLINE; sessions does not import workers)
OFFLINE_WORKER_STATUS = "offline"
log = logging.getLogger(__name__)

_local_lock = threading.Lock()
_local_sessions: dict[str, JobContext] = {}


def worker_control_group(worker_id: str) -> str:
    """The group a worker process's command listener is in. Channel layer group names are
    under 100 ASCII letters, digits, hyphens, underscores and periods (a worker id's `@` is
    not one): the id, so made readable and cut short, then a digest of it, so two ids never share one."""
    readable = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in worker_id)[:48]
    return f"worker-control-{readable}.{hashlib.blake2b(worker_id.encode(), digest_size=8).hexdigest()}"


def register_local(ctx: JobContext) -> None:
    with _local_lock:
        _local_sessions[ctx.session_id] = ctx


def unregister_local(ctx: JobContext) -> None:
    with _local_lock:
        if _local_sessions.get(ctx.session_id) is ctx:
            del _local_sessions[ctx.session_id]


def local_sessions() -> list[JobContext]:
    with _local_lock:
        return list(_local_sessions.values())


def _deliver(session_id: str, worker_id: str | None, payload: dict[str, Any], *, acknowledged: bool = True) -> None:
    with _local_lock:
        ctx = _local_sessions.get(session_id)
    if ctx is not None:
        ctx.post_command(payload["command"], payload)
        return
    layer = get_channel_layer()
    if layer is None:
        raise Unavailable("no channel layer is configured; the session cannot be reached", field="session")
    if isinstance(layer, InMemoryChannelLayer):
        # the in-memory layer does not leave this process, and the session is not hosted here
        raise Unavailable(f"session '{session_id}' is not hosted by this process and the in-memory channel layer "
                          "cannot reach other processes", field="session")
    if not worker_id:
        raise Unavailable(f"session '{session_id}' is not hosted by any worker (its job has no assigned worker)",
                          field="session")
    async_to_sync(_send_and_wait_for_ack)(layer, session_id, worker_id, payload, acknowledged)


async def _send_and_wait_for_ack(layer: Any, session_id: str, worker_id: str, payload: dict[str, Any],
                                 acknowledged: bool) -> None:
    # a plain (not process-local "!") channel: any thread's loop may wait on it
    reply_to = f"session-ack.{secrets.token_hex(12)}" if acknowledged else None
    message = {"type": "session.command", **payload, "session_id": session_id, "reply_to": reply_to}
    try:
        await layer.group_send(worker_control_group(worker_id), message)
    except Exception as exc:  # noqa: BLE001 - redis down or restarting
        raise Unavailable(f"the channel layer is unavailable ({type(exc).__name__}: {exc}); the command was not sent",
                          field="session") from exc
    if reply_to is None:
        return
    try:
        reply = await asyncio.wait_for(layer.receive(reply_to), timeout=settings.SESSION_COMMAND_ACK_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        raise Unavailable(f"the worker hosting session '{session_id}' did not confirm the command within "
                          f"{settings.SESSION_COMMAND_ACK_TIMEOUT_SECONDS:g}s (worker lost or restarting)",
                          field="session") from None
    except Exception as exc:  # noqa: BLE001
        raise Unavailable(f"the channel layer is unavailable ({type(exc).__name__}: {exc}) while waiting for the "
                          "session's confirmation", field="session") from exc
    if not reply.get("ok"):
        raise Conflict(f"session '{session_id}' did not take the command: {reply.get('error') or 'refused'}", field="session")


def send_session_command(session_id: str, command: str, *, actor: str, text: str | None = None) -> None:
    """Send say / interrupt / end / message / pause / resume to a live session.

    Raises NotFound (no such session), Conflict (the session is not live) or DomainError
    (unknown command; say/message without text).
    """
    spec = COMMAND_SPECS.get(command)
    if spec is None:
        raise DomainError(f"command must be one of {', '.join(COMMANDS)}", field="command")
    if spec.needs_text:
        if not isinstance(text, str) or not text.strip():
            raise DomainError(f"'{command}' needs a non-empty text", field="text")
        if len(text) > MAX_TEXT:
            raise DomainError(f"text must be at most {MAX_TEXT} characters", field="text")
    row = AgentSession.objects.filter(pk=session_id).values("status", "job__assigned_worker_id",
                                                            "job__assigned_worker__status").first()
    if row is None:
        raise NotFound(f"session '{session_id}' does not exist", field="session")
    if row["status"] not in LIVE_SESSION_STATUSES:
        raise Conflict(f"session '{session_id}' is {row['status']}, not live", field="session")
    worker_id, worker_status = row["job__assigned_worker_id"], row["job__assigned_worker__status"]
    if worker_id and worker_status in (None, OFFLINE_WORKER_STATUS):
        raise Unavailable(f"worker '{worker_id}' hosting session '{session_id}' is offline", field="session")
    status = row["status"]
    if spec.required_status is not None and status != spec.required_status:
        raise Conflict(f"session '{session_id}' is {status}; only a {spec.required_status} session can {command}",
                       field="session")
    _deliver(session_id, worker_id, {"command": command, "actor": actor, "text": text})


async def asend_session_command(session_id: str, command: str, *, actor: str, text: str | None = None) -> None:
    """The same, for async callers (consumers)."""
    await sync_to_async(send_session_command)(session_id, command, actor=actor, text=text)


def stop_job_session(*, job_id: str, reason: str, actor: str = "") -> None:
    """End the live session of a job (after a cancel). Best effort: the hosting worker's
    lease heartbeat also notices the job is no longer its own and ends the session."""
    row = AgentSession.objects.live().filter(job_id=job_id).values_list("session_id", "job__assigned_worker_id").first()
    if row is None:
        return
    session_id, worker_id = row
    try:
        _deliver(session_id, worker_id, {"command": "end", "actor": actor, "text": None, "reason": reason},
                 acknowledged=False)
    except Exception:  # noqa: BLE001 - the heartbeat path still ends it
        log.warning("end command for session %s not delivered", session_id, exc_info=True)
