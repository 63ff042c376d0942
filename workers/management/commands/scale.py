from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.celery import app
from workers.autoscale import autoscale_apply, fleet_capacity
from workers.models import Worker, WorkerStatus


class Command(BaseCommand):
    help = ("Resize worker pools through Celery remote control (pool_grow/pool_shrink): set one worker's "
            "capacity, or --auto to apply the desired capacity computed from queue depth and load.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("worker_id", nargs="?")
        parser.add_argument("--capacity", type=int)
        parser.add_argument("--auto", action="store_true")

    def handle(self, *args: Any, **o: Any) -> None:
        if o["auto"]:
            from django.conf import settings

            settings.AUTOSCALE = True
            result = autoscale_apply()
            self.stdout.write(f"desired capacity {result['desired_capacity']}; changes: {result.get('changes') or 'none'}")
            return
        if not o["worker_id"] or not o["capacity"]:
            figures = fleet_capacity()
            self.stdout.write(f"capacity {figures['capacity']}, desired {figures['desired_capacity']} "
                              "(give WORKER_ID --capacity N, or --auto)")
            return
        if not 1 <= o["capacity"] <= 1000:
            raise CommandError("--capacity must be 1..1000")
        worker = Worker.objects.filter(pk=o["worker_id"], status=WorkerStatus.ONLINE).first()
        if worker is None:
            raise CommandError(f"no online worker {o['worker_id']!r}")
        diff = o["capacity"] - worker.capacity
        if diff > 0:
            replies = app.control.pool_grow(diff, destination=[worker.worker_id], reply=True, timeout=2)
        elif diff < 0:
            replies = app.control.pool_shrink(-diff, destination=[worker.worker_id], reply=True, timeout=2)
        else:
            replies = []
        Worker.objects.filter(pk=worker.pk).update(capacity=o["capacity"])
        self.stdout.write(f"{worker.worker_id}: capacity {worker.capacity} → {o['capacity']} {replies or ''}".rstrip())
