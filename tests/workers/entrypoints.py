"""Entry points for tests (WorkerOptions.entry_point accepts any module:function)."""
from __future__ import annotations

from asgiref.sync import sync_to_async

from sessions.hosting import session_mirror_status
from sessions.job_context import JobContext


async def crashing(ctx: JobContext) -> None:
    raise RuntimeError("provider exploded")


async def flaky(ctx: JobContext) -> None:
    """Fails when the job's metadata says so; otherwise a session that ends at once."""
    if ctx.metadata.get("fail"):
        raise RuntimeError("scripted failure")


seen: list[JobContext] = []


async def recording(ctx: JobContext) -> None:
    """Remembers the context it was given and ends at once."""
    seen.append(ctx)


async def erroring(ctx: JobContext) -> None:
    """A runtime that puts its session in the error state and returns normally."""
    await sync_to_async(session_mirror_status, thread_sensitive=False)(ctx.session_id, "error", "transport lost")
