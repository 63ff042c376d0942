"""JobContext: what a session entry point gets from the worker that hosts it.

It carries the job's room, participants and metadata and the agent config snapshot; it
owns the session's shutdown (callbacks, tracked tasks cancelled with a timeout), routes
operator commands to the runtime session, and gives a logger tagged with job/session ids.
No Django imports: the worker fills it in, the runtime only reads it.

An entry point is `async def entry(ctx: JobContext) -> None`; it returns when the session
is over, and should return soon after `ctx.shutdown_requested` is set (it can
`await ctx.wait_for_shutdown()`). The worker runs the one WorkerOptions.entry_point names;
by default the agent's voice runtime, DEFAULT_ENTRY_POINT (`sessions.hosting` loads it).
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

DEFAULT_ENTRY_POINT = "sessions.entrypoints:agent_session"
CommandHandler = Callable[..., Any]
ShutdownCallback = Callable[[str], Any]

base_log = logging.getLogger("sessions.job")
# operator commands that carry the user's input (they count against the idle timeout)
USER_INPUT_COMMANDS = frozenset({"message"})


class JobLogger(logging.LoggerAdapter):
    """Prefixes every message with the job and session ids and puts them on the record."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        return f"[job={extra.get('job_id')} session={extra.get('session_id')}] {msg}", kwargs


@dataclass
class JobContext:
    job_id: str
    session_id: str
    agent_id: str
    agent_version: int
    agent_config: dict[str, Any]
    room: dict[str, Any]
    transport: str = "local"
    participant_identity: str = ""
    participants: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    worker_id: str = ""
    attempt: int = 1
    livekit_url: str = ""
    livekit_token: str = ""  # the agent's join token for `room`, when transport is livekit

    def __post_init__(self) -> None:
        self.log = JobLogger(base_log, {"job_id": self.job_id, "session_id": self.session_id})
        self.shutdown_reason: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown_event: asyncio.Event | None = None
        self._callbacks: list[ShutdownCallback] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._handlers: dict[str, CommandHandler] = {}
        self._early: list[tuple[str, dict[str, Any]]] = []
        self._closed = False
        self.last_user_activity = time.monotonic()

    @property
    def room_name(self) -> str:
        return str(self.room.get("name", ""))

    # --- loop binding -------------------------------------------------------------------
    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called by the host on the session's loop before the entry point runs."""
        self._loop = loop
        self._shutdown_event = asyncio.Event()
        if self.shutdown_reason is not None:
            self._shutdown_event.set()

    # --- shutdown ----------------------------------------------------------------------
    @property
    def shutdown_requested(self) -> bool:
        return self.shutdown_reason is not None

    def shutdown(self, reason: str = "ended") -> None:
        """Ask the session to end. Safe from any thread; the first reason wins."""
        if self.shutdown_reason is None:
            self.shutdown_reason = reason
        loop, event = self._loop, self._shutdown_event
        if loop is None or event is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    async def wait_for_shutdown(self) -> str:
        assert self._shutdown_event is not None, "JobContext not bound to a loop"
        await self._shutdown_event.wait()
        return self.shutdown_reason or "ended"

    def add_shutdown_callback(self, callback: ShutdownCallback) -> None:
        """`callback(reason)`, sync or async, runs when the session closes (last added first)."""
        self._callbacks.append(callback)

    # --- tasks -------------------------------------------------------------------------
    def create_task(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """A task that lives at most as long as the session: cancelled at close."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("task %s failed", task.get_name(), exc_info=task.exception())

    # --- user activity (the idle timeout) ---------------------------------------------------
    def note_user_activity(self) -> None:
        """The user spoke or sent text: the session is not idle. Cheap; call from any thread."""
        self.last_user_activity = time.monotonic()

    # --- operator commands ---------------------------------------------------------------
    def on_command(self, command: str, handler: CommandHandler) -> None:
        """Register `handler(**payload)` (sync or async) for say / interrupt / message."""
        self._handlers[command] = handler
        early = [p for c, p in self._early if c == command]
        self._early = [(c, p) for c, p in self._early if c != command]
        for payload in early:  # commands that arrived while the session was still starting
            self.create_task(self.handle_command(command, payload), name=f"command-{command}")

    def bind_session(self, session: Any) -> None:
        """Route operator commands to a runtime session's methods (those it has)."""
        if hasattr(session, "say"):
            self.on_command("say", lambda text=None, **_: session.say(text or ""))
        if hasattr(session, "interrupt"):
            self.on_command("interrupt", lambda **_: session.interrupt())
        for name in ("push_text", "send_user_text", "generate_reply"):
            if hasattr(session, name):
                method = getattr(session, name)
                self.on_command("message", lambda text=None, _m=method, **_: _m(text or ""))
                break

    async def handle_command(self, command: str, payload: dict[str, Any]) -> None:
        if command == "end":
            note = self._handlers.get("end")  # e.g. records the operator action; ending is ours
            if note is not None:
                try:
                    result = note(**{k: v for k, v in payload.items() if k in ("text", "actor")})
                    if inspect.isawaitable(result):
                        await result
                except Exception:  # noqa: BLE001 - the session ends regardless
                    self.log.exception("end hook failed")
            self.shutdown(payload.get("reason") or f"ended by {payload.get('actor') or 'operator'}")
            return
        if command in USER_INPUT_COMMANDS:
            self.note_user_activity()
        handler = self._handlers.get(command)
        if handler is None:
            if len(self._early) < 100:
                self._early.append((command, payload))
            else:
                self.log.warning("no handler for operator command %r", command)
            return
        result = handler(**{k: v for k, v in payload.items() if k in ("text", "actor")})
        if inspect.isawaitable(result):
            await result

    def post_command(self, command: str, payload: dict[str, Any]) -> None:
        """Deliver a command from another thread of this process."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def run() -> None:
            self.create_task(self.handle_command(command, payload), name=f"command-{command}")

        loop.call_soon_threadsafe(run)

    # --- close -------------------------------------------------------------------------
    async def aclose(self, *, timeout: float = 5.0) -> None:
        """Run shutdown callbacks, then cancel tracked tasks and wait for them (bounded)."""
        if self._closed:
            return
        self._closed = True
        reason = self.shutdown_reason or "ended"
        self.shutdown(reason)
        for callback in reversed(self._callbacks):
            try:
                result = callback(reason)
                if isinstance(result, Awaitable):
                    await asyncio.wait_for(result, timeout)
            except Exception:  # noqa: BLE001 - one failing callback must not skip the others
                self.log.exception("shutdown callback failed")
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            if pending:
                self.log.warning("%d task(s) did not stop within %.1fs", len(pending), timeout)
