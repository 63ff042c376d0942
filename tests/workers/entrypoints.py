"""Entry points for tests (WorkerOptions.entry_point accepts any module:function)."""
from __future__ import annotations

from sessions.job_context import JobContext


async def crashing(ctx: JobContext) -> None:
    raise RuntimeError("provider exploded")
