"""Run the whole control plane in one process: web (daphne), a Celery worker and the
periodic maintenance loop, on whatever broker and database the settings name.

In the embedded default (SQLite, in-memory broker and channel layer) this is the only
way the parts can talk: the in-memory transports work inside one process only.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

log = logging.getLogger("controlplane.embedded")
SHUTDOWN_REASON = "shutdown"
# live sessions get this long to end and be stored; the entry point's own grace is 5 s
SHUTDOWN_WAIT_SECONDS = 7.0


def start_worker_thread(concurrency: int) -> Any:
    """A Celery worker on a thread of this process (as celery.contrib.testing does)."""
    from celery.contrib.testing.worker import TestWorkController, setup_app_for_worker
    from celery.utils.nodenames import default_nodename

    from controlplane.celery import app

    setup_app_for_worker(app, settings.LOG_LEVEL, None)
    worker = TestWorkController(
        app=app,
        hostname=default_nodename("embedded"),
        concurrency=concurrency,
        pool="threads",
        loglevel=settings.LOG_LEVEL,
        queues=["celery", "tools"],
        ready_callback=None,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
    )
    threading.Thread(target=worker.start, name="celery-worker", daemon=True).start()
    worker.ensure_started()
    return worker


class Command(BaseCommand):
    help = "Run web, worker and periodic loop in one process (the embedded mode)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=50, help="Sessions the in-process worker hosts at once.")
        parser.add_argument("--no-worker", action="store_true", help="Serve web only (workers run elsewhere).")

    def handle(self, *args: Any, **options: Any) -> None:
        from daphne.endpoints import build_endpoint_description_strings
        from controlplane.web_server import BoundedServer  # imports daphne.server: its reactor goes in at serve time

        from agents.tools.sync import sync_tools_safely
        from controlplane.asgi import application
        from workers.maintenance import start_maintenance_thread

        # Agents may only name registered tools: give code tools their rows before serving.
        sync_tools_safely()
        if not options["no_worker"]:
            # one process runs everything, so its worker takes every kind of agent
            os.environ.setdefault("WORKER_SERVES", "voice_agent,multimodal_agent,text_agent")
            # The maintenance loop runs every few seconds; its successes are not news.
            logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
            start_worker_thread(options["concurrency"])
            # reaping and assignment against the database, as `manage.py supervise` does
            start_maintenance_thread()
            self.stdout.write("worker: in-process Celery worker started")
        url = f"http://{options['host']}:{options['port']}"
        self.stdout.write(self.style.SUCCESS(f"serving on {url}  (admin: {url}/admin/, health: {url}/health)"))
        # daphne stops its reactor on SIGINT/SIGTERM and returns; the sessions are ours to end
        BoundedServer(
            application=application,
            endpoints=build_endpoint_description_strings(host=options["host"], port=options["port"]),
            signal_handlers=True,
        ).run()
        if not options["no_worker"]:
            shutdown_embedded_worker(self.stdout.write)
        exit_now(0)


def _exit_at_once(signum: int, frame: FrameType | None) -> None:
    exit_now(128 + signum)


def exit_now(code: int) -> None:
    """Leave without waiting for threads: Celery's pool threads (a ThreadPoolExecutor, whose
    threads Python joins at exit) can still be blocked in a session or a broker call."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def shutdown_embedded_worker(write: Callable[[str], Any]) -> None:
    """End live sessions with reason `shutdown`, wait for them to be stored, go offline.
    A second Ctrl-C (or SIGTERM) exits at once."""
    from workers.node import node
    from workers.registration import worker_stop

    signal.signal(signal.SIGINT, _exit_at_once)
    signal.signal(signal.SIGTERM, _exit_at_once)
    live = node.contexts()
    if live:
        write(f"shutting down: ending {len(live)} live session(s) (Ctrl-C again to exit at once)")
    for ctx in live:
        ctx.shutdown(SHUTDOWN_REASON)
    deadline = time.monotonic() + SHUTDOWN_WAIT_SECONDS
    # the pool threads close each session and its job once its entry point returned
    while node.active_jobs and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        worker_stop(reason=SHUTDOWN_REASON)
    except Exception:  # noqa: BLE001 - exiting anyway; the next start's maintenance cleans up
        log.warning("could not mark the embedded worker offline", exc_info=True)
