"""Session entry points a worker can run (WorkerOptions.entry_point, WORKER_ENTRY_POINT).

`agent_session` (the default, `sessions.entrypoints:agent_session`) runs the voice runtime
built by `sessions.launch` from the job's agent config snapshot, with the Django event sink,
the tool executor and the job's transport; it mirrors the runtime's status into the
AgentSession row and routes operator commands to the runtime. `echo_session` is a
runtime-free session for fleet smoke tests and the dispatch benchmark: it stores a few
events and echoes messages. `sessions.hosting` runs them.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from controlplane.broadcaster import broadcasts_together
from agents.credentials import agent_endpoints
from runtime.provider_configs import ProviderConfigError, parse_recording_config
from agents.tools.executor import build_tool_executor
from sessions.metrics import observe_turn_metrics
from sessions.audio_link import AudioLink
from sessions.event_sink import DjangoEventSink, session_events_append_and_broadcast
from sessions.hosting import session_mirror_status
from sessions.job_context import JobContext
from sessions.launch import build_session
from sessions.recording import CallRecorder
from sessions.simulated_callers import simulated_caller_for, simulated_caller_run
from runtime.events import Error, OperatorAction, ParticipantInfo
from runtime.simulated_caller import SimulatedCaller
from runtime.transports.livekit import LiveKitTransport
from runtime.transports.local import LocalTransport

LOCAL_PARTICIPANT = "local-user"


def _transport_for(ctx: JobContext, caller: SimulatedCaller | None = None) -> Any:
    if ctx.transport == "local" and caller is not None:
        # a load test's simulated caller, in this process (metadata.simulated_caller)
        user = ParticipantInfo(identity=ctx.participant_identity or "simulated-caller", kind="standard")
        return LocalTransport(on_audio=caller.heard, on_clear=caller.cleared, participant=user)
    if ctx.transport == "local":
        # the voice playground's browser audio, in and out, wherever this session runs; the
        # job's participant (or whoever sends it text and commands) is on the other end
        user = ParticipantInfo(identity=ctx.participant_identity or LOCAL_PARTICIPANT, kind="standard")
        link = AudioLink(ctx.session_id, participant=user)
        link.open()
        ctx.add_shutdown_callback(lambda reason: link.close())
        return link.transport
    return LiveKitTransport(url=ctx.livekit_url, token=ctx.livekit_token, room=ctx.room_name,
                            participant_identity=ctx.participant_identity or None,
                            leave_grace_s=settings.LIVEKIT_LEAVE_GRACE_SECONDS,
                            connect_timeout_s=settings.LIVEKIT_CONNECT_TIMEOUT_SECONDS,
                            publish_timeout_s=settings.LIVEKIT_PUBLISH_TIMEOUT_SECONDS,
                            reconnect_timeout_s=settings.LIVEKIT_RECONNECT_TIMEOUT_SECONDS)


def _log_error(ctx: JobContext, event: Error) -> None:
    """Provider and transport failures reach the worker's log too, tagged with the job and session."""
    level = logging.WARNING if event.recoverable else logging.ERROR
    ctx.log.log(level, "%s error%s: %s", event.source, f" ({event.error_kind})" if event.error_kind else "",
                event.message)


def _recorder_for(ctx: JobContext) -> CallRecorder | None:
    try:
        enabled = parse_recording_config(ctx.agent_config.get("recording_config")).enabled
    except ProviderConfigError:  # validated when saved; an old snapshot just does not record
        return None
    return CallRecorder(ctx.session_id) if enabled else None


async def agent_session(ctx: JobContext) -> None:
    tools = await asyncio.to_thread(build_tool_executor, list(ctx.agent_config.get("tools") or []))
    # base URLs and keys resolved (and checked against where each key may go) off the loop
    endpoints = await asyncio.to_thread(agent_endpoints, ctx.agent_config)
    caller = await simulated_caller_for(ctx)
    sink = DjangoEventSink(ctx.session_id)
    session = build_session(
        ctx.agent_config, transport=_transport_for(ctx, caller), sink=sink, tools=tools, session_id=ctx.session_id,
        agent_id=ctx.agent_id, user_data={"job_id": ctx.job_id, "metadata": ctx.metadata}, endpoints=endpoints,
    )
    sink.track_audio_state(session.audio_state.as_dict)  # the row's audio_state, about once a second
    # a text agent (neither STT nor TTS) has no audio to keep; a realtime session always has
    silent = getattr(session, "stt", True) is None and getattr(session, "tts", True) is None
    recorder = None if silent else _recorder_for(ctx)
    if recorder is not None:
        session.add_audio_tap(recorder)
    # (status, final): a "disconnected" before stop() began is a reconnect, not the session's end
    statuses: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
    session.on("state_changed", lambda event: statuses.put_nowait((event.new_state, session.stopping)))
    # the user speaking or typing keeps the session from its idle timeout
    for user_input in ("vad_speech_start", "stt_result", "text_received"):
        session.on(user_input, lambda event: ctx.note_user_activity())
    # per-turn latency histogram for /metrics (cheap: a few in-memory observations a turn)
    session.on("metrics_collected", lambda event: observe_turn_metrics(event.metrics.model_dump()))
    session.on("error", lambda event: _log_error(ctx, event))

    async def mirror() -> None:  # one writer, so the row sees the transitions in order
        while True:
            status, final = await statuses.get()
            await asyncio.to_thread(session_mirror_status, ctx.session_id, status, final=final, job_id=ctx.job_id)

    ctx.create_task(mirror(), name=f"status-{ctx.session_id}")
    def operator(command: str) -> Callable[..., None]:
        def handle(text: str | None = None, actor: str | None = None) -> None:
            # operator_action returns the speech's handle; it is not awaited, or the next
            # command (an interrupt, an end) would queue behind the whole playout
            session.operator_action(command, text=text or "", by=actor or "")

        return handle

    for command in ("say", "interrupt", "message", "pause", "resume"):
        ctx.on_command(command, operator(command))
    # "end" is the worker's to carry out (with its reason); the runtime only records it
    ctx.on_command("end", lambda text=None, actor=None: session.emit(OperatorAction(action="end", by=actor or "")))
    ctx.add_shutdown_callback(lambda reason: sink.aclose())
    try:
        await session.start()
        greeting = ctx.metadata.get("greeting")
        if isinstance(greeting, str) and greeting:
            session.say(greeting)
        if caller is not None:
            ctx.create_task(simulated_caller_run(ctx, session, caller), name=f"caller-{ctx.session_id}")
        closed = asyncio.ensure_future(session.wait_closed())
        shutdown = asyncio.ensure_future(ctx.wait_for_shutdown())
        await asyncio.wait({closed, shutdown}, return_when=asyncio.FIRST_COMPLETED)
        if not closed.done():
            await session.stop(ctx.shutdown_reason or "ended")
        else:
            shutdown.cancel()
            ctx.shutdown(closed.result())
    finally:
        if not session.closed:
            await session.stop(ctx.shutdown_reason or "worker_error")
        while not statuses.empty():
            status, final = statuses.get_nowait()
            await asyncio.to_thread(session_mirror_status, ctx.session_id, status, final=final, job_id=ctx.job_id)
        if recorder is not None:  # before the worker closes the row and sends the end-of-call report
            await asyncio.to_thread(recorder.close)


# --- a runtime-free session ------------------------------------------------------------------


def _append(session_id: str, type_: str, data: dict[str, Any]) -> None:
    # stored, then broadcast: a dashboard watching the session sees it live
    session_events_append_and_broadcast(session_id=session_id, events=[(type_, datetime.now(timezone.utc), data)])


def _echo_started(ctx: JobContext) -> None:
    """connected, active, session_started: in this order, on one trip off the loop (each trip
    is an executor submit and a thread wake-up: most of what the echo cost bench/dispatch.py's
    workers), their broadcasts in one hand-over (each stored before it)."""
    with broadcasts_together():
        session_mirror_status(ctx.session_id, "connected", job_id=ctx.job_id)
        session_mirror_status(ctx.session_id, "active", job_id=ctx.job_id)
        _append(ctx.session_id, "session_started", {"session_id": ctx.session_id, "agent_id": ctx.agent_id,
                                                    "transport": "echo"})


async def echo_session(ctx: JobContext) -> None:
    """Connects at once, echoes `message`s as responses, ends on `end` / cancel / drain.

    metadata `echo_end_after_s` ends it on its own after that many seconds.
    """
    append = sync_to_async(_append, thread_sensitive=False)
    await sync_to_async(_echo_started, thread_sensitive=False)(ctx)

    async def on_message(text: str | None = None, actor: str | None = None) -> None:
        await append(ctx.session_id, "operator_action", {"action": "message", "text": text or "", "by": actor or ""})
        await append(ctx.session_id, "text_received", {"text": text or "", "source": "operator"})
        await append(ctx.session_id, "response_generated", {"text": f"echo: {text}"})

    async def on_say(text: str | None = None, actor: str | None = None) -> None:
        await append(ctx.session_id, "operator_action", {"action": "say", "text": text or "", "by": actor or ""})
        await append(ctx.session_id, "speech_created", {"text": text or "", "source": "say"})

    ctx.on_command("message", on_message)
    ctx.on_command("say", on_say)
    ctx.on_command("interrupt", lambda **_: append(ctx.session_id, "interrupted", {"reason": "operator"}))
    end_after = ctx.metadata.get("echo_end_after_s")
    if isinstance(end_after, (int, float)) and not isinstance(end_after, bool):
        try:
            await asyncio.wait_for(ctx.wait_for_shutdown(), timeout=float(end_after))
        except asyncio.TimeoutError:
            ctx.shutdown("completed")
    reason = await ctx.wait_for_shutdown()
    await append(ctx.session_id, "session_stopped", {"reason": reason})
