from __future__ import annotations

import os
import socket
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workers.cli import worker_argv, worker_env
from workers.node import options_from_env


SPARE_THREADS = 4


class Command(BaseCommand):
    help = ("Start a production worker node: a Celery worker on the threads pool whose concurrency is the node's "
            "session capacity (max_concurrent_jobs), consuming its own queue plus the shared ones.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default=os.environ.get("WORKER_NAME", f"worker@{socket.gethostname()}"),
                            help="Celery node name; also the worker id and its own queue (<name>.dq2).")
        parser.add_argument("--concurrency", type=int, help="Sessions at once (default WORKER_MAX_CONCURRENT_JOBS).")
        parser.add_argument("--queues", default="celery,tools")
        parser.add_argument("--region")
        parser.add_argument("--drain-timeout", type=int)
        parser.add_argument("--health-port", type=int)
        parser.add_argument("--entry-point")
        parser.add_argument("--print", action="store_true", help="Print the command instead of running it.")

    def handle(self, *args: Any, **o: Any) -> None:
        overrides = {"max_concurrent_jobs": o["concurrency"], "region": o["region"], "drain_timeout": o["drain_timeout"],
                     "health_check_port": o["health_port"], "entry_point": o["entry_point"]}
        try:
            options = options_from_env(**overrides)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        env = worker_env()
        # the worker process reads its options from the environment again at worker_init
        for key, value in {"WORKER_MAX_CONCURRENT_JOBS": options.max_concurrent_jobs, "WORKER_REGION": options.region,
                           "WORKER_DRAIN_TIMEOUT": options.drain_timeout, "WORKER_HEALTH_CHECK_PORT": options.health_check_port,
                           "WORKER_ENTRY_POINT": options.entry_point}.items():
            env[key] = str(value)
        # a few threads beyond the session slots, so maintenance (reap), tool calls and pings
        # still run when every slot hosts a session
        argv = worker_argv(name=o["name"], concurrency=options.max_concurrent_jobs + SPARE_THREADS,
                           queues=o["queues"].split(","), loglevel=options.log_level)
        if o["print"]:
            self.stdout.write(" ".join(argv))
            return
        self.stdout.write(f"starting worker {o['name']} (capacity {options.max_concurrent_jobs}, drain {options.drain_timeout}s)")
        self.stdout.flush()
        os.execvpe(argv[0], argv, env)  # the worker owns the process: signals (SIGTERM → drain) reach it directly
