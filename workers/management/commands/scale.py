from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.celery import app
from workers.autoscale import autoscale_apply, fleet_capacity
from workers.models import Worker, WorkerStatus


REPLY_TIMEOUT_S = 2.0


def in_memory_broker() -> bool:
    return str(app.conf.broker_url or "").startswith("memory://")


def confirmed(replies: list[dict[str, Any]] | None, worker_id: str) -> str | None:
    """The worker's 'ok' answer among remote-control replies, or None."""
    for reply in replies or []:
        answer = reply.get(worker_id)
        if isinstance(answer, dict) and "ok" in answer:
            return str(answer["ok"])
    return None


class Command(BaseCommand):
    help = ("Resize worker pools through Celery remote control (pool_grow/pool_shrink): set one worker's "
            "capacity, or --auto to apply the desired capacity computed from queue depth and load.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("worker_id", nargs="?")
        parser.add_argument("--capacity", type=int)
        parser.add_argument("--auto", action="store_true")

    def handle(self, *args: Any, **o: Any) -> None:
        if o["auto"]:
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
        if in_memory_broker():
            raise CommandError(
                "scale resizes a worker through the broker, and the embedded mode's broker is in-memory: only the "
                "server process reaches its worker. Restart it with WORKER_MAX_CONCURRENT_JOBS=N instead "
                "(capacity unchanged)")
        diff = o["capacity"] - worker.capacity
        if diff:
            resize = app.control.pool_grow if diff > 0 else app.control.pool_shrink
            replies = resize(abs(diff), destination=[worker.worker_id], reply=True, timeout=REPLY_TIMEOUT_S)
            answer = confirmed(replies, worker.worker_id)
            if answer is None:  # record only what the worker applied
                raise CommandError(f"{worker.worker_id} did not confirm the resize within {REPLY_TIMEOUT_S:.0f}s "
                                   f"(replies: {replies or 'none'}); capacity unchanged at {worker.capacity}")
        Worker.objects.filter(pk=worker.pk).update(capacity=o["capacity"])
        self.stdout.write(f"{worker.worker_id}: capacity {worker.capacity} → {o['capacity']}")
