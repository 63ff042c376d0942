"""Real `celery worker` subprocesses for the integration tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from django.db import connection

from tests.helpers import wait_for
from workers.models import Worker, WorkerStatus

ROOT = Path(__file__).resolve().parents[2]
FAST = {"JOB_LEASE_SECONDS": "3", "WORKER_HEARTBEAT_SECONDS": "0.5", "WORKER_OFFLINE_AFTER_SECONDS": "3"}
STOP_GRACE_S = 3.0  # SIGQUIT, then SIGKILL: a test's workers are not waited for


def test_database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER'] or 'postgres'}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class WorkerProcess:
    def __init__(self, name: str, *, concurrency: int = 4, log_dir: Path, **env: str) -> None:
        self.name = f"{name}-{uuid.uuid4().hex[:6]}@fleet"
        self.log_path = log_dir / f"{self.name}.log"
        full_env = {**os.environ, **FAST, "CELERY_CUSTOM_WORKER_POOL": "workers.pool:TaskPool", "DATABASE_URL": test_database_url(), "PYTHONPATH": str(ROOT), **env}
        full_env.pop("PYTEST_CURRENT_TEST", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--pool", "custom",
             "-c", str(concurrency), "-n", self.name, "-Q", "celery", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-l", "INFO"],
            cwd=ROOT, env=full_env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT,
        )

    def wait_online(self, timeout: float = 90.0) -> Worker:
        def ready() -> Worker | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.log()}")
            worker = Worker.objects.filter(pk=self.name, status=WorkerStatus.ONLINE).first()
            return worker if worker and "ready." in self.log() else None

        return wait_for(ready, timeout=timeout, what=f"worker {self.name} online")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def sigterm(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # cold shutdown: do not wait for sessions
            try:
                # an idle worker is gone in about a second; one hosting a session does not exit
                # (celery's cold shutdown calls TaskPool.terminate_job, which the pool lacks)
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Fleet:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.workers: list[WorkerProcess] = []

    def start(self, *names: str, concurrency: int = 4, **env: Any) -> list[WorkerProcess]:
        started = [WorkerProcess(name, concurrency=concurrency, log_dir=self.log_dir, **{k: str(v) for k, v in env.items()})
                   for name in names]
        self.workers.extend(started)
        for w in started:
            w.wait_online()
        return started

    def stop(self) -> None:
        for w in self.workers:
            w.stop()


def poll(fn: Any, *, timeout: float = 20.0, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll with the periodic maintenance in between, as beat would run it."""
    from workers.reaper import reap

    def step() -> Any:
        reap()
        return fn()

    return wait_for(step, timeout=timeout, interval=interval, what=what)


def now() -> float:
    return time.monotonic()
