"""Dynamic scaling: a desired fleet capacity from queue depth and load, applied to the
workers' pools through Celery remote control (pool_grow / pool_shrink) when AUTOSCALE is on.
"""
from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings
from django.db.models import Avg, Count, Q, Sum

from controlplane.celery import app
from workers.models import Job, JobStatus, Worker, WorkerStatus
from workers.node import autoscale_enabled

log = logging.getLogger(__name__)
TARGET_UTILISATION = 0.75  # keep a quarter of the slots free for bursts
MIN_PER_WORKER, MAX_PER_WORKER = 1, 1000


def fleet_capacity() -> dict[str, Any]:
    """The figures `/status` and the metrics expose."""
    online = Worker.objects.filter(status=WorkerStatus.ONLINE)
    agg = online.aggregate(capacity=Sum("capacity"), load=Avg("load"), workers=Count("worker_id"))
    active = Job.objects.filter(status__in=(JobStatus.ASSIGNED, JobStatus.RUNNING)).count()
    pending = Job.objects.pending().count()
    capacity = agg["capacity"] or 0
    load = float(agg["load"] or 0.0)
    demand = active + pending
    desired = math.ceil(demand / TARGET_UTILISATION) if demand else 0
    if load > 0.9 and capacity:  # the machines are busy even if slots look free: do not grow there
        desired = min(desired, capacity)
    return {
        "workers": agg["workers"] or 0,
        "capacity": capacity,
        "active_jobs": active,
        "pending_jobs": pending,
        "queue_limit": settings.JOB_QUEUE_LIMIT,
        "average_load": round(load, 3),
        "desired_capacity": max(desired, agg["workers"] or 0),
        "autoscale": autoscale_enabled(),
    }


def per_worker_targets(desired: int, workers: list[Worker]) -> dict[str, int]:
    if not workers:
        return {}
    share = math.ceil(desired / len(workers)) if desired else MIN_PER_WORKER
    return {w.worker_id: min(MAX_PER_WORKER, max(MIN_PER_WORKER, share)) for w in workers}


def autoscale_apply() -> dict[str, Any]:
    figures = fleet_capacity()
    if not figures["autoscale"]:
        return figures
    workers = list(Worker.objects.filter(status=WorkerStatus.ONLINE).annotate(
        n_active=Count("jobs", filter=Q(jobs__status__in=(JobStatus.ASSIGNED, JobStatus.RUNNING)))
    ))
    changes = {}
    for worker in workers:
        target = max(per_worker_targets(figures["desired_capacity"], workers)[worker.worker_id], worker.n_active)
        diff = target - worker.capacity
        if diff == 0:
            continue
        if diff > 0:
            app.control.pool_grow(diff, destination=[worker.worker_id])
        else:
            app.control.pool_shrink(-diff, destination=[worker.worker_id])
        Worker.objects.filter(pk=worker.pk).update(capacity=target)
        changes[worker.worker_id] = target
        log.info("autoscale: %s capacity %d → %d", worker.worker_id, worker.capacity, target)
    figures["changes"] = changes
    return figures
