"""Helpers to run tools through a real Celery worker process (integration tests, bench)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from celery import Celery

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def client_app(broker_url: str) -> Celery:
    """A Celery app that only sends `agents.run_tool` and reads results, like the runtime's."""
    app = Celery("tools-client", broker=broker_url, backend=broker_url, set_as_current=False)
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                    broker_connection_retry_on_startup=True)
    return app


class ToolWorker:
    """`celery -A controlplane worker -Q tools` as a subprocess.

    `database_url` is the database the worker reads Tool rows from; None gives it a
    fresh migrated SQLite file of its own.
    """

    def __init__(self, *, broker_url: str, database_url: str | None = None,
                 tool_modules: list[str] | None = None, concurrency: int = 4) -> None:
        self.broker_url = broker_url
        self.database_url = database_url
        self.tool_modules = tool_modules or []
        self.concurrency = concurrency
        self.hostname = f"tools-test-{uuid.uuid4().hex[:8]}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="tools-worker-")
        self.log_path = Path(self._tmp.name) / "worker.log"
        self.app = client_app(broker_url)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_"))}
        env.update({
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
            "REDIS_URL": self.broker_url,
            "CELERY_BROKER_URL": self.broker_url,
            "CELERY_RESULT_BACKEND": self.broker_url,
            "DATABASE_URL": self.database_url or f"sqlite:///{self._tmp.name}/worker.sqlite3",
            "TOOL_MODULES": ",".join(self.tool_modules),
            "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        })
        return env

    def start(self, timeout: float = 60.0) -> "ToolWorker":
        env = self.env()
        if self.database_url is None:
            subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        with self.app.connection_for_write() as conn:
            conn.default_channel.queue_purge("tools") if _queue_exists(conn, "tools") else None
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "controlplane", "worker", "-Q", "tools", "-P", "threads",
             "-c", str(self.concurrency), "-n", self.hostname, "--without-gossip", "--without-mingle",
             "-l", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            if self.app.control.ping(destination=[self.hostname], timeout=0.5):
                return self
        self.stop()
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None
        self._tmp.cleanup()

    def __enter__(self) -> "ToolWorker":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _queue_exists(conn: Any, name: str) -> bool:
    try:
        conn.default_channel.queue_declare(queue=name, passive=True)
        return True
    except Exception:
        return False
