"""The state of this worker process: who it is, what it runs, whether it is draining."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from django.conf import settings
from pydantic import ValidationError

from controlplane.env import env_bool, env_int, env_list, env_str
from sessions.job_context import DEFAULT_ENTRY_POINT, JobContext
from workers.options import DEFAULT_MAX_CONCURRENT_JOBS, WorkerOptions
from workers.worker_types import WorkerType


def options_from_env(**overrides: object) -> WorkerOptions:
    """WorkerOptions from WORKER_* variables (and LIVEKIT_* for the server credentials).

    Without LiveKit settings the LiveKit dev-server defaults are used, so local-transport
    fleets start without them. Raises ValueError whose message names each bad field.
    """
    values: dict[str, object] = {
        "agent_name": env_str("WORKER_AGENT_NAME", "controlplane"),
        "server_url": settings.LIVEKIT_URL or "ws://127.0.0.1:7880",
        "api_key": settings.LIVEKIT_API_KEY or "devkey",
        "api_secret": settings.LIVEKIT_API_SECRET or "secret",
        "entry_point": env_str("WORKER_ENTRY_POINT", DEFAULT_ENTRY_POINT),
        "max_concurrent_jobs": env_int("WORKER_MAX_CONCURRENT_JOBS", DEFAULT_MAX_CONCURRENT_JOBS),
        "worker_type": env_str("WORKER_TYPE", WorkerType.VOICE_AGENT),
        "region": env_str("WORKER_REGION", ""),
        "drain_timeout": env_int("WORKER_DRAIN_TIMEOUT", 300),
        "health_check_port": env_int("WORKER_HEALTH_CHECK_PORT", 0),
        "log_level": env_str("WORKER_LOG_LEVEL", settings.LOG_LEVEL),
        "serves": tuple(env_list("WORKER_SERVES")),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return WorkerOptions(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"invalid worker options: {problems}") from None


def worker_weight() -> int:
    return env_int("WORKER_WEIGHT", 1, minimum=1, maximum=100)


def worker_version() -> str:
    return env_str("WORKER_VERSION", "") or _package_version()


def _package_version() -> str:
    return env_str("APP_VERSION", "dev")


@dataclass
class WorkerNode:
    worker_id: str = ""
    options: WorkerOptions | None = None
    draining: bool = False
    stopping: bool = False  # worker_stop() began: a consumer going away now is expected
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: dict[str, JobContext] = field(default_factory=dict)  # job_id → context
    held_leases: set[str] = field(default_factory=set)  # jobs being run or closed here: the heartbeat renews them
    pid: int = field(default_factory=os.getpid)
    embedded: bool = False

    def track(self, ctx: JobContext) -> None:
        with self.lock:
            self.running[ctx.job_id] = ctx

    def untrack(self, ctx: JobContext) -> None:
        with self.lock:
            if self.running.get(ctx.job_id) is ctx:
                del self.running[ctx.job_id]

    @contextmanager
    def lease_held(self, job_id: str) -> Iterator[None]:
        """The heartbeat renews this job's lease while the block runs (e.g. while it is closed)."""
        with self.lock:
            self.held_leases.add(job_id)
        try:
            yield
        finally:
            with self.lock:
                self.held_leases.discard(job_id)

    def leased_job_ids(self) -> set[str]:
        with self.lock:
            return set(self.running) | self.held_leases

    def contexts(self) -> list[JobContext]:
        with self.lock:
            return list(self.running.values())

    @property
    def active_jobs(self) -> int:
        with self.lock:
            return len(self.running)


node = WorkerNode()


def autoscale_enabled() -> bool:
    return bool(getattr(settings, "AUTOSCALE", env_bool("AUTOSCALE", False)))
