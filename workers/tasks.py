"""Celery tasks of the fleet. Thin: take an id, call into the services.

The dispatcher sends `workers.run_session` by name (workers.dispatch.RUN_SESSION_TASK), so
it never imports this module; importing it connects the worker lifecycle signals.
"""
from __future__ import annotations

from typing import Any

from celery import shared_task

from sessions.recording_files import recordings_purge
from workers.autoscale import autoscale_apply
from workers.dispatch import RUN_SESSION_TASK, jobs_assign_pending
from workers.node import node
from workers.reaper import reap as reap_once
from workers.registration import worker_start
from workers.session_runner import run_job


@shared_task(name=RUN_SESSION_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_session(self: Any, job_id: str) -> str:
    """Claim the job for this worker and host it until it ends (blocks this pool thread)."""
    # the node registered at worker_init is authoritative (an in-thread test worker reports
    # the bare host name in request.hostname)
    worker_id = node.worker_id or self.request.hostname
    if not node.worker_id:
        worker_start(worker_id=worker_id)
    return run_job(job_id=job_id, worker_id=worker_id)


@shared_task(name="workers.reap", ignore_result=True)
def reap() -> dict[str, int]:
    """Offline dead workers, take back expired leases, assign pending jobs."""
    return reap_once()


@shared_task(name="workers.assign_pending", ignore_result=True)
def assign_pending() -> int:
    return jobs_assign_pending()


@shared_task(name="workers.autoscale", ignore_result=True)
def autoscale() -> dict[str, Any]:
    return autoscale_apply()


@shared_task(name="workers.purge_recordings", ignore_result=True)
def purge_recordings() -> int:
    """Recordings past RECORDINGS_RETENTION_DAYS: files deleted from storage, then rows."""
    return recordings_purge()


@shared_task(name="workers.ping")
def ping() -> str:
    """A no-op round trip (the dispatch benchmark's baseline; a broker/worker smoke test)."""
    return "pong"
