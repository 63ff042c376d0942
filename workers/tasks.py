"""Celery tasks of the fleet. Thin: take an id, call into the services."""
from __future__ import annotations

from typing import Any

from celery import shared_task

import workers.registration  # noqa: F401 - connects the worker lifecycle signals


@shared_task(name="workers.run_session", bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_session(self: Any, job_id: str) -> str:
    """Claim the job for this worker and host it until it ends (blocks this pool thread)."""
    from workers.node import node
    from workers.registration import worker_start
    from workers.session_runner import run_job

    # the node registered at worker_init is authoritative (an in-thread test worker reports
    # the bare host name in request.hostname)
    worker_id = node.worker_id or self.request.hostname
    if not node.worker_id:
        worker_start(worker_id=worker_id)
    return run_job(job_id=job_id, worker_id=worker_id)


@shared_task(name="workers.reap", ignore_result=True)
def reap() -> dict[str, int]:
    """Offline dead workers, take back expired leases, assign pending jobs."""
    from workers.reaper import reap as do_reap

    return do_reap()


@shared_task(name="workers.assign_pending", ignore_result=True)
def assign_pending() -> int:
    from workers.dispatch import jobs_assign_pending

    return jobs_assign_pending()


@shared_task(name="workers.autoscale", ignore_result=True)
def autoscale() -> dict[str, Any]:
    from workers.autoscale import autoscale_apply

    return autoscale_apply()


@shared_task(name="workers.purge_recordings", ignore_result=True)
def purge_recordings() -> int:
    """Recordings past RECORDINGS_RETENTION_DAYS: files deleted from storage, then rows."""
    from sessions.recording_files import recordings_purge

    return recordings_purge()


@shared_task(name="workers.ping")
def ping() -> str:
    """A no-op round trip (the dispatch benchmark's baseline; a broker/worker smoke test)."""
    return "pong"
