"""Celery tasks of the agents app (thin: they call into agents.tools)."""
from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from agents.tools.metrics import stats_flusher
from agents.tools.remote import execute_remote_call
from agents.tools.sync import sync_tools_safely


@shared_task(name="agents.run_tool", queue="tools", acks_late=False, ignore_result=False)
def run_tool(name: str, arguments: str, context: dict[str, Any]) -> dict[str, Any]:
    """Run one tool call on the `tools` queue. Not retried: a tool may have side effects."""
    return execute_remote_call(name, arguments, context)


@worker_ready.connect
def _sync_tools_on_worker_start(**_: Any) -> None:
    sync_tools_safely()


@worker_process_init.connect
def _start_stats_flusher(**_: Any) -> None:
    stats_flusher.start()


@worker_ready.connect
def _start_stats_flusher_main(**_: Any) -> None:
    stats_flusher.start()


@worker_shutdown.connect
def _flush_stats_on_shutdown(**_: Any) -> None:
    stats_flusher.stop()
