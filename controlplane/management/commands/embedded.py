"""Run the whole control plane in one process: web (daphne), a Celery worker and the
periodic maintenance loop, on whatever broker and database the settings name.

In the embedded default (SQLite, in-memory broker and channel layer) this is the only
way the parts can talk: the in-memory transports work inside one process only.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

log = logging.getLogger("controlplane.embedded")


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


def start_periodic_loop(interval: float) -> threading.Thread:
    """Run the beat schedule's tasks in-process, so no separate `celery beat` is needed."""
    from controlplane.celery import app

    def loop() -> None:
        while True:
            for entry in (app.conf.beat_schedule or {}).values():
                task = app.tasks.get(entry["task"])
                if task is None:
                    continue
                try:
                    task.apply()
                except Exception:  # noqa: BLE001 - a failing round must not stop the loop
                    log.exception("periodic task %s failed", entry["task"])
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="periodic", daemon=True)
    thread.start()
    return thread


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

        from agents.tool_sync import sync_tools_safely
        from controlplane.asgi import application

        # Agents may only name registered tools: give code tools their rows before serving.
        sync_tools_safely()
        if not options["no_worker"]:
            # one process runs everything, so its worker takes every kind of agent
            os.environ.setdefault("WORKER_SERVES", "voice_agent,multimodal_agent,text_agent")
            # The maintenance loop runs every few seconds; its successes are not news.
            logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
            start_worker_thread(options["concurrency"])
            start_periodic_loop(settings.WORKER_HEARTBEAT_SECONDS)
            self.stdout.write("worker: in-process Celery worker started")
        url = f"http://{options['host']}:{options['port']}"
        self.stdout.write(self.style.SUCCESS(f"serving on {url}  (admin: {url}/admin/, health: {url}/health)"))
        BoundedServer(
            application=application,
            endpoints=build_endpoint_description_strings(host=options["host"], port=options["port"]),
            signal_handlers=True,
        ).run()
