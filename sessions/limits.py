"""A session's time limits: `max_duration_s` in all, `idle_timeout_s` without user input.

Both come from the agent's `turn_config` (see runtime.provider_configs.TurnConfig for the
defaults; 0 turns a limit off). A watch task on the session's loop ends the session with
reason `max_duration` or `idle_timeout`, which frees its slot: the host closes the
session and its job and routes the oldest waiting job at once. User input is whatever
the entry point reports through `JobContext.note_user_activity` (speech, transcripts,
text) plus operator `message`s.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from runtime.provider_configs import ProviderConfigError, parse_turn_config
from sessions.job_context import JobContext

MAX_DURATION_REASON = "max_duration"
IDLE_TIMEOUT_REASON = "idle_timeout"


@dataclass(frozen=True)
class SessionLimits:
    max_duration_s: float
    idle_timeout_s: float


def session_limits(config: dict[str, Any]) -> SessionLimits:
    try:
        turn = parse_turn_config(config.get("turn_config"))
    except ProviderConfigError:
        turn = parse_turn_config({})  # the runtime reports the bad config itself; the limits still hold
    return SessionLimits(max_duration_s=float(turn.max_duration_s), idle_timeout_s=float(turn.idle_timeout_s))


async def enforce_session_limits(ctx: JobContext, limits: SessionLimits) -> None:
    """Sleep until the next deadline, then end the session if it passed; until shutdown."""
    started = time.monotonic()
    while not ctx.shutdown_requested:
        now = time.monotonic()
        deadlines: list[tuple[float, str]] = []
        if limits.max_duration_s > 0:
            deadlines.append((started + limits.max_duration_s, MAX_DURATION_REASON))
        if limits.idle_timeout_s > 0:
            deadlines.append((ctx.last_user_activity + limits.idle_timeout_s, IDLE_TIMEOUT_REASON))
        if not deadlines:
            return
        at, reason = min(deadlines)
        if now >= at:
            ctx.log.info("session ends: %s (max %.0fs, idle %.0fs)", reason, limits.max_duration_s, limits.idle_timeout_s)
            ctx.shutdown(reason)
            return
        await asyncio.sleep(min(at - now, 60.0))  # woken early by nothing: activity only moves the idle deadline later
