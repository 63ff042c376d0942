"""Worker lifecycle: register on start, heartbeat (load, active jobs, leases), drain, stop.

Hooked to Celery's signals: `worker_init` registers (the embedded in-thread worker sends
it too), `worker_shutting_down` starts a drain on a warm shutdown (SIGTERM), and
`worker_shutdown` marks the worker offline.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery.signals import worker_init, worker_shutdown, worker_shutting_down
from celery.utils.nodenames import worker_direct
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from controlplane.celery import app as celery_app
from controlplane.env import env_bool
from controlplane.fleet_events import flush_fleet_events
from runtime.providers import openai as openai_providers
from sessions.hosting import DRAIN_REASON
from workers import consumer_health
from workers.claims import job_release, leases_renew
from workers.consumer_health import consumer_state
from workers.dispatch import job_route, jobs_assign_pending
from workers.events import worker_status_changed
from workers.health_server import start_health_server
from workers.models import CircuitState, Job, JobStatus, Worker, WorkerStatus
from workers.node import node, options_from_env, worker_version, worker_weight
from workers.options import WorkerOptions
from workers.reaper import worker_mark_offline
from workers.worker_types import served_types

log = logging.getLogger(__name__)
CONSUMER_DEAD_EXIT_CODE = 3
consumer_health.install(celery_app)


def worker_register(*, worker_id: str, options: WorkerOptions, capacity: int | None = None, health_port: int | None = None) -> Worker:
    now = timezone.now()
    capacity = capacity or options.max_concurrent_jobs
    consumer = consumer_state.health()
    status = WorkerStatus.ONLINE if consumer.ok else WorkerStatus.UNREADY
    defaults = {
        "hostname": worker_id.partition("@")[2] or worker_id,
        "queue": worker_direct(worker_id).name,
        "agent_name": options.agent_name,
        "worker_type": options.worker_type,
        "serves": served_types(options.worker_type, options.serves),
        "region": options.region,
        "version": worker_version(),
        "capacity": capacity,
        "weight": worker_weight(),
        "status": status,
        "status_reason": consumer.reason if status == WorkerStatus.UNREADY else "",
        "load": 0.0,
        "active_jobs": 0,
        "circuit_state": CircuitState.CLOSED,
        "consecutive_failures": 0,
        "circuit_opened_at": None,
        "health_check_port": health_port or options.health_check_port or None,
        "metadata": {"pid": os.getpid(), "drain_timeout": options.drain_timeout, "entry_point": options.entry_point},
        "last_heartbeat_at": now,
        "started_at": now,
    }
    worker, _ = Worker.objects.update_or_create(worker_id=worker_id, defaults=defaults)
    worker_status_changed(worker_id, status, capacity=capacity)
    log.info("worker %s registered (capacity %d, queue %s)", worker_id, capacity, worker.queue)
    return worker


def current_load(capacity: int) -> float:
    slots = node.active_jobs / capacity if capacity else 1.0
    if not env_bool("WORKER_REPORT_CPU_LOAD", True):  # e.g. several nodes sharing one test host
        return round(min(1.0, slots), 3)
    try:
        cpu = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        cpu = 0.0
    return round(min(1.0, max(slots, cpu)), 3)


def heartbeat_once() -> set[str]:
    """Report load and active jobs, renew leases; end sessions whose jobs we lost."""
    worker_id = node.worker_id
    capacity = node.options.max_concurrent_jobs if node.options else 1
    row_status = Worker.objects.filter(pk=worker_id).values_list("status", flat=True).first()
    if row_status == WorkerStatus.DRAINING and not node.draining:
        drain_locally(reason="drain requested")  # e.g. POST /workers/{id}/drain from the web
    if row_status in (None, WorkerStatus.OFFLINE) and node.options is not None:
        # declared dead during a long pause (its jobs were taken back); come back as a fresh node
        worker_register(worker_id=worker_id, options=node.options, capacity=capacity)
    consumer = consumer_state.health(shutdown_requested=node.draining or node.stopping)
    if consumer.dead:
        exit_without_consumer(reason=consumer.reason)
    if node.draining:
        status = WorkerStatus.DRAINING
    else:
        status = WorkerStatus.ONLINE if consumer.ok else WorkerStatus.UNREADY
    reason = "" if status == WorkerStatus.ONLINE else consumer.reason if status == WorkerStatus.UNREADY else "draining"
    Worker.objects.filter(pk=worker_id).update(
        last_heartbeat_at=timezone.now(), load=current_load(capacity), active_jobs=node.active_jobs, status=status,
        status_reason=reason[:255],
    )
    _report_status_change(worker_id, row_status, status, reason)
    contexts = {ctx.job_id: ctx for ctx in node.contexts()}
    lost = leases_renew(worker_id=worker_id, job_ids=node.leased_job_ids())
    for job_id in lost:
        if job_id not in contexts:
            continue  # its session is over; the job is being closed
        status_now = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
        reason = "job cancelled" if status_now == JobStatus.CANCELLED else "job no longer held by this worker"
        contexts[job_id].shutdown(reason)
    return lost


def _report_status_change(worker_id: str, before: str | None, after: str, reason: str) -> None:
    if before == after:
        return
    if after == WorkerStatus.UNREADY:
        log.warning("worker %s not ready: %s", worker_id, reason)
    worker_status_changed(worker_id, after, reason=reason)
    if after == WorkerStatus.ONLINE and before == WorkerStatus.UNREADY:
        log.info("worker %s ready: its consumer takes work", worker_id)
        _route_waiting_jobs()


def _route_waiting_jobs() -> None:
    """Capacity came back: give it the waiting jobs now, not at the next maintenance tick."""
    try:
        jobs_assign_pending()
    except Exception:  # noqa: BLE001 - the maintenance loop assigns them anyway
        log.warning("could not route waiting jobs", exc_info=True)


def exit_without_consumer(*, reason: str) -> None:
    """The consumer stopped for good with nobody asking: give the jobs back and exit non-zero,
    so the supervisor (compose, systemd, Kubernetes) starts a worker that takes work again."""
    log.critical("worker %s: Celery consumer is dead (%s); taking its jobs back and exiting", node.worker_id, reason)
    try:
        worker_mark_offline(worker_id=node.worker_id, reason=f"worker {node.worker_id} lost its Celery consumer: {reason}")
    finally:
        logging.shutdown()
        os._exit(CONSUMER_DEAD_EXIT_CODE)


class Heartbeat:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Beat now (e.g. the consumer just connected or lost the broker), not at the next interval."""
        self._wake.set()

    def _run(self) -> None:
        interval = settings.WORKER_HEARTBEAT_SECONDS
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                close_old_connections()
                heartbeat_once()
            except Exception:  # noqa: BLE001 - a database blip must not stop the heartbeat
                log.exception("heartbeat failed")
        connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


heartbeat = Heartbeat()
consumer_state.on_change(heartbeat.wake)
_drain_timer: threading.Timer | None = None


def worker_start(*, worker_id: str, concurrency: int | None = None, options: WorkerOptions | None = None) -> Worker:
    """Validate options, register, start heartbeat and the node's health server."""
    options = options or options_from_env()
    logging.getLogger("sessions").setLevel(options.python_log_level())
    node.worker_id = worker_id
    node.options = options
    node.draining = False
    node.stopping = False
    worker = worker_register(worker_id=worker_id, options=options, capacity=concurrency or options.max_concurrent_jobs)
    heartbeat.start()
    if options.health_check_port:
        start_health_server(options.health_check_port)
    return worker


def worker_drain(*, worker: Worker | None = None, worker_id: str | None = None, reason: str = "drain requested") -> Worker | None:
    """Drain a worker from anywhere (the API, the `drain` command): mark it draining, so no
    job is routed to it; the node itself sees the mark on its next heartbeat and drains."""
    target = worker.worker_id if worker is not None else (worker_id or node.worker_id)
    if target == node.worker_id:
        drain_locally(reason=reason)
    else:
        Worker.objects.filter(pk=target).exclude(status=WorkerStatus.OFFLINE).update(status=WorkerStatus.DRAINING)
        worker_status_changed(target, WorkerStatus.DRAINING, reason=reason)
    return Worker.objects.filter(pk=target).first()


def drain_locally(*, reason: str = "draining") -> None:
    """On the node: refuse new jobs, let running sessions finish up to drain_timeout, then end them."""
    global _drain_timer
    if node.draining or not node.worker_id:
        return
    node.draining = True
    worker_id = node.worker_id
    Worker.objects.filter(pk=worker_id).update(status=WorkerStatus.DRAINING)
    worker_status_changed(worker_id, WorkerStatus.DRAINING, reason=reason)
    # jobs routed here but not started go back to the queue for another worker
    for job_id in Job.objects.filter(assigned_worker_id=worker_id, status=JobStatus.ASSIGNED).values_list("job_id", flat=True):
        if job_release(job_id=job_id, worker_id=worker_id, reason=f"worker {worker_id} is draining"):
            job_route(job_id=job_id)
    timeout = node.options.drain_timeout if node.options else 300
    log.warning("worker %s draining: %d session(s) get up to %ds to finish", worker_id, node.active_jobs, timeout)
    _drain_timer = threading.Timer(timeout, _end_remaining_sessions, kwargs={"reason": DRAIN_REASON})
    _drain_timer.daemon = True
    _drain_timer.start()


def _end_remaining_sessions(*, reason: str) -> None:
    for ctx in node.contexts():
        ctx.shutdown(reason)


def worker_stop(*, reason: str = "worker stopped") -> None:
    """Mark offline; anything still running is ended and its job taken back."""
    if not node.worker_id:
        return
    node.stopping = True
    if _drain_timer is not None:
        _drain_timer.cancel()
    heartbeat.stop()
    _end_remaining_sessions(reason=reason)
    close_old_connections()
    worker_mark_offline(worker_id=node.worker_id, reason=reason)
    log.info("worker %s offline", node.worker_id)
    flush_fleet_events(2.0)


# --- Celery signals ------------------------------------------------------------------------


@worker_init.connect
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    worker_id = getattr(sender, "hostname", None)
    if not worker_id:
        return
    pool = getattr(sender, "pool_cls", None)
    pool_name = pool if isinstance(pool, str) else getattr(pool, "__module__", str(pool))
    if pool_name == "custom":
        pool_name = os.environ.get("CELERY_CUSTOM_WORKER_POOL", "")
    if "thread" not in pool_name and "workers.pool" not in pool_name:
        log.warning("worker %s uses pool %s; sessions share one loop per process only with --pool threads", worker_id, pool_name)
    # the openai SDK imported now, not on a live call's event loop at its first request
    openai_providers.preload()
    consumer_state.expect()  # registered unready: online once the consumer consumes its queues
    options = options_from_env()
    threads = getattr(sender, "concurrency", None) or options.max_concurrent_jobs
    # session slots: the configured maximum, never more than the pool has threads
    worker_start(worker_id=worker_id, concurrency=min(int(threads), options.max_concurrent_jobs), options=options)


@worker_shutting_down.connect
def _on_shutting_down(sender: Any = None, how: str = "Warm", **_: Any) -> None:
    if how == "Warm":
        # we are inside a signal handler: do the database work on a thread of its own
        threading.Thread(target=drain_locally, kwargs={"reason": "warm shutdown (SIGTERM)"}, name="worker-drain", daemon=True).start()
    else:
        node.stopping = True
        _end_remaining_sessions(reason=f"{how.lower()} shutdown")


@worker_shutdown.connect
def _on_worker_shutdown(**_: Any) -> None:
    worker_stop(reason="worker shut down")
