"""A real daphne server subprocess and headless Chromium for the browser tests.

The server gets the test database (PostgreSQL, shared with this process) and the same
Redis channel layer, so events a sink stores here reach the browser through it.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection

from tests.helpers import wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"
SCREENSHOTS = OUTPUT / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
T = TypeVar("T")

_db_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="browser-test-db")


def db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ORM code off the main thread: Playwright's sync API keeps an event loop there,
    and Django refuses synchronous queries on a thread with a running loop."""

    def call() -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    return _db_pool.submit(call).result()


def require_services() -> None:
    assert settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), (
        "browser tests share the test database with a daphne subprocess: set DATABASE_URL to PostgreSQL")
    assert settings.REDIS_URL, "browser tests need the Redis channel layer: set REDIS_URL"
    assert os.path.exists(CHROMIUM), f"install Chromium ({CHROMIUM}): apt-get install -y chromium"


def test_database_url() -> str:
    s = connection.settings_dict
    user = s["USER"] or "postgres"
    auth = f"{user}:{s['PASSWORD']}" if s.get("PASSWORD") else user
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DaphneServer:
    """`python -m controlplane.web_server server.asgi:application` (daphne, as production
    runs it) on a fixed port; can be stopped and restarted
    on the same port (a real dropped connection for the browser)."""

    def __init__(self, log_dir: Path, module: str = "controlplane.web_server", **env: str) -> None:
        self.module = module  # "daphne" for stock daphne
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"daphne-{self.port}.log"
        self.env = {
            **os.environ, "DATABASE_URL": test_database_url(), "REDIS_URL": settings.REDIS_URL,
            "DJANGO_SETTINGS_MODULE": "controlplane.settings", "DB_CONN_MAX_AGE": "0", "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1", **env,
        }
        self.env.pop("PYTEST_CURRENT_TEST", None)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> DaphneServer:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "-b", "127.0.0.1", "-p", str(self.port), "server.asgi:application"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        wait_until_serving(f"{self.url}/health/live", self.proc, timeout=timeout, output=self.log, interval=0.1)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    page.screenshot(path=str(path))
    return path


def log_in(page: Any, base_url: str, username: str, password: str, next_path: str = "/") -> None:
    page.goto(f"{base_url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{next_path}")


class EmbeddedServer:
    """The README's way: `migrate`, `load_demo`, `ensure_login`, then `manage.py embedded`
    (one process, SQLite, in-memory broker and channel layer) with none of the test run's
    database, Redis or provider variables; `env` adds what a test needs."""

    SCRUBBED = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "PYTEST_CURRENT_TEST",
                "OPENAI_API_KEY", "OPENAI_BASE_URL")

    def __init__(self, var_dir: Path, password: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = password
        self.env = {k: v for k, v in os.environ.items() if k not in self.SCRUBBED}
        self.env.update({"CONTROLPLANE_VAR_DIR": str(var_dir), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
                         "DJANGO_SETTINGS_MODULE": "controlplane.settings", **env})
        self.log_path = OUTPUT / "logs" / f"embedded-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, timeout=120)
        return done.stdout.decode(errors="replace")

    def start(self) -> EmbeddedServer:
        self.manage("migrate", "--noinput", "-v0")
        self.manage("load_demo")
        self.manage("ensure_login", "--username", "admin", "--password", self.password)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "manage.py", "embedded", "--port", str(self.port)], cwd=ROOT,
                                     env=self.env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT)
        wait_until_serving(f"{self.url}/health/live", self.proc, timeout=60, output=self.log)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
