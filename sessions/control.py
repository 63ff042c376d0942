"""Operator commands to a live session, wherever it runs.

`send_session_command` (called by the API and the dashboard) reaches the hosting worker
through the channel layer group `session-control-<session_id>`; the worker-side session
host listens on a channel in that group (`command_listener`) and hands each command to
the session's JobContext. When the session runs in this very process (the embedded mode,
whose in-memory channel layer does not cross threads' event loops) the command is handed
over directly.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer

from controlplane.errors import Conflict, DomainError, NotFound

if TYPE_CHECKING:
    from sessions.job_context import JobContext

COMMANDS = ("say", "interrupt", "end", "message", "pause", "resume")
# the session state machine: only an active session pauses, only a paused one resumes
REQUIRED_STATUS = {"pause": "active", "resume": "paused"}
MAX_TEXT = 10_000
log = logging.getLogger(__name__)

_local_lock = threading.Lock()
_local_sessions: dict[str, JobContext] = {}


def control_group(session_id: str) -> str:
    return f"session-control-{session_id}"


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


def _deliver(session_id: str, payload: dict[str, Any]) -> None:
    with _local_lock:
        ctx = _local_sessions.get(session_id)
    if ctx is not None:
        ctx.post_command(payload["command"], payload)
        return
    layer = get_channel_layer()
    if layer is None:
        raise Conflict("no channel layer is configured; the session cannot be reached", field="session")
    async_to_sync(layer.group_send)(control_group(session_id), {"type": "session.command", **payload})


def send_session_command(session_id: str, command: str, *, actor: str, text: str | None = None) -> None:
    """Send say / interrupt / end / message / pause / resume to a live session.

    Raises NotFound (no such session), Conflict (the session is not live) or DomainError
    (unknown command; say/message without text).
    """
    from sessions.models import LIVE_SESSION_STATUSES, AgentSession

    if command not in COMMANDS:
        raise DomainError(f"command must be one of {', '.join(COMMANDS)}", field="command")
    if command in ("say", "message"):
        if not isinstance(text, str) or not text.strip():
            raise DomainError(f"'{command}' needs a non-empty text", field="text")
        if len(text) > MAX_TEXT:
            raise DomainError(f"text must be at most {MAX_TEXT} characters", field="text")
    status = AgentSession.objects.filter(pk=session_id).values_list("status", flat=True).first()
    if status is None:
        raise NotFound(f"session '{session_id}' does not exist", field="session")
    if status not in LIVE_SESSION_STATUSES:
        raise Conflict(f"session '{session_id}' is {status}, not live", field="session")
    required = REQUIRED_STATUS.get(command)
    if required is not None and status != required:
        raise Conflict(f"session '{session_id}' is {status}; only a {required} session can {command}", field="session")
    _deliver(session_id, {"command": command, "actor": actor, "text": text})


async def asend_session_command(session_id: str, command: str, *, actor: str, text: str | None = None) -> None:
    """The same, for async callers (consumers)."""
    await sync_to_async(send_session_command)(session_id, command, actor=actor, text=text)


def stop_job_session(*, job_id: str, reason: str, actor: str = "") -> None:
    """End the live session of a job (after a cancel). Best effort: the hosting worker's
    lease heartbeat also notices the job is no longer its own and ends the session."""
    from sessions.models import AgentSession

    session_id = AgentSession.objects.live().filter(job_id=job_id).values_list("session_id", flat=True).first()
    if session_id is None:
        return
    try:
        _deliver(session_id, {"command": "end", "actor": actor, "text": None, "reason": reason})
    except Exception:  # noqa: BLE001 - the heartbeat path still ends it
        log.warning("end command for session %s not delivered", session_id, exc_info=True)


async def command_listener(ctx: JobContext) -> None:
    """Worker side: feed commands from the channel layer group to the session until cancelled."""
    layer = get_channel_layer()
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        return  # in-process delivery only (see module docstring)
    group = control_group(ctx.session_id)
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    try:
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a redis blip; cancellation can also surface as one
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from None
                ctx.log.warning("control channel receive failed; retrying", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message.get("type") != "session.command":
                continue
            try:
                await ctx.handle_command(message["command"], message)
            except Exception:  # noqa: BLE001 - a bad command must not end the listener
                ctx.log.exception("operator command %s failed", message.get("command"))
    finally:
        try:
            await asyncio.shield(layer.group_discard(group, channel))
        except BaseException:  # noqa: BLE001
            pass
