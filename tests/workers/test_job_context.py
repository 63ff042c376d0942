from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from sessions.job_context import JobContext


def make_ctx() -> JobContext:
    return JobContext(job_id="job_1", session_id="ses_1", agent_id="support", agent_version=2, agent_config={},
                      room={"name": "room-1"}, metadata={"lang": "en"})


async def test_tracked_tasks_are_cancelled_at_close() -> None:
    ctx = make_ctx()
    ctx.bind_loop(asyncio.get_running_loop())
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = ctx.create_task(forever(), name="forever")
    await started.wait()
    await ctx.aclose(timeout=1)
    assert task.cancelled()


async def test_shutdown_callbacks_run_last_added_first_with_the_reason() -> None:
    ctx = make_ctx()
    ctx.bind_loop(asyncio.get_running_loop())
    calls: list[str] = []

    async def async_cb(reason: str) -> None:
        calls.append(f"async:{reason}")

    ctx.add_shutdown_callback(lambda reason: calls.append(f"sync:{reason}"))
    ctx.add_shutdown_callback(async_cb)
    ctx.shutdown("operator")
    await ctx.aclose()
    assert calls == ["async:operator", "sync:operator"]


async def test_a_failing_callback_does_not_skip_the_others() -> None:
    ctx = make_ctx()
    ctx.bind_loop(asyncio.get_running_loop())
    calls: list[str] = []
    ctx.add_shutdown_callback(lambda reason: calls.append("ran"))
    ctx.add_shutdown_callback(lambda reason: 1 / 0)
    await ctx.aclose()
    assert calls == ["ran"]


async def test_shutdown_from_another_thread_wakes_the_session() -> None:
    ctx = make_ctx()
    ctx.bind_loop(asyncio.get_running_loop())
    waiter = asyncio.ensure_future(ctx.wait_for_shutdown())
    await asyncio.to_thread(ctx.shutdown, "drain")
    assert await asyncio.wait_for(waiter, 5) == "drain"
    ctx.shutdown("second reason")
    assert ctx.shutdown_reason == "drain"  # the first reason wins


async def test_commands_reach_the_bound_runtime_session() -> None:
    class Runtime:
        def __init__(self) -> None:
            self.calls: list[tuple[str, str]] = []

        def say(self, text: str) -> None:
            self.calls.append(("say", text))

        def interrupt(self) -> None:
            self.calls.append(("interrupt", ""))

        def push_text(self, text: str) -> None:
            self.calls.append(("message", text))

    ctx, runtime = make_ctx(), Runtime()
    ctx.bind_loop(asyncio.get_running_loop())
    ctx.bind_session(runtime)
    await ctx.handle_command("say", {"text": "hello", "actor": "ops"})
    await ctx.handle_command("interrupt", {"actor": "ops"})
    await ctx.handle_command("message", {"text": "hi", "actor": "ops"})
    assert runtime.calls == [("say", "hello"), ("interrupt", ""), ("message", "hi")]
    await ctx.handle_command("end", {"actor": "ops"})
    assert ctx.shutdown_reason == "ended by ops"


def test_the_logger_tags_records_with_job_and_session(caplog: pytest.LogCaptureFixture) -> None:
    ctx = make_ctx()
    with caplog.at_level(logging.INFO, logger="sessions.job"):
        ctx.log.info("joined %s", ctx.room_name)
    record: Any = caplog.records[-1]
    assert record.getMessage() == "[job=job_1 session=ses_1] joined room-1"
    assert (record.job_id, record.session_id) == ("job_1", "ses_1")
