from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workers.models import Worker, WorkerStatus
from workers.registration import worker_drain


class Command(BaseCommand):
    help = ("Drain workers: no new jobs; running sessions finish up to drain_timeout, then end. The node picks "
            "the mark up on its next heartbeat. (Sending SIGTERM to a worker process drains it too.)")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("worker_ids", nargs="*")
        parser.add_argument("--all", action="store_true")

    def handle(self, *args: Any, worker_ids: list[str], **o: Any) -> None:
        if o["all"]:
            worker_ids = list(Worker.objects.filter(status=WorkerStatus.ONLINE).values_list("worker_id", flat=True))
        if not worker_ids:
            raise CommandError("name worker ids, or --all")
        for worker_id in worker_ids:
            worker = Worker.objects.filter(pk=worker_id).first()
            if worker is None:
                raise CommandError(f"no worker {worker_id!r}")
            worker_drain(worker=worker, reason="drain command")
            self.stdout.write(f"{worker_id} draining")
