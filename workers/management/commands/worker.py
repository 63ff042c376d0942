from __future__ import annotations

import os
import socket
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from controlplane.celery import app


class Command(BaseCommand):
    help = "Run a Celery worker in this process (threads pool), e.g. beside `embedded --no-worker` while developing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default=f"dev-{os.getpid()}@{socket.gethostname()}")
        parser.add_argument("--concurrency", type=int, default=10)
        parser.add_argument("--queues", default="celery,tools")
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args: Any, **o: Any) -> None:
        # the threads pool with grow/shrink (workers/pool.py); --pool only takes the aliases
        # known when celery was imported, the setting takes a class path
        app.conf.worker_pool = "workers.pool:TaskPool"
        app.worker_main(["worker", "-c", str(o["concurrency"]), "-n", o["name"], "-Q", o["queues"],
                         "-l", o["loglevel"], "--without-gossip", "--without-mingle"])
