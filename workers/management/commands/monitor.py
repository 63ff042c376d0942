from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from workers.autoscale import fleet_capacity
from workers.cli import table
from workers.management.commands.cluster import workers_snapshot
from workers.models import Job


def render() -> str:
    fleet = fleet_capacity()
    workers = workers_snapshot()
    jobs = list(Job.objects.unfinished().select_related("agent").order_by("status", "priority", "created_at")[:25])
    return "\n".join([
        f"workers {fleet['workers']}  capacity {fleet['capacity']}  active {fleet['active_jobs']}  pending {fleet['pending_jobs']}"
        f"  desired {fleet['desired_capacity']}  load {fleet['average_load']:.2f}",
        "",
        table(["worker", "status", "active/cap", "load", "circuit"],
              [[w.worker_id, w.status, f"{w.n_active}/{w.capacity}", f"{w.load:.2f}", w.circuit_state] for w in workers]),
        "",
        table(["job", "status", "agent", "room", "prio", "worker", "attempts"],
              [[j.job_id, j.status, j.agent.agent_id if j.agent else "-", j.room_name, j.priority, j.assigned_worker_id or "-",
                f"{j.attempts}/{j.max_attempts}"] for j in jobs]),
    ])


class Command(BaseCommand):
    help = "A live table of workers and unfinished jobs in the terminal (Ctrl-C to stop)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=1.0)
        parser.add_argument("--once", action="store_true")

    def handle(self, *args: Any, **o: Any) -> None:
        if o["once"]:
            self.stdout.write(render())
            return
        try:
            while True:
                close_old_connections()
                self.stdout.write("\x1b[H\x1b[2J" + time.strftime("%H:%M:%S ") + render())
                self.stdout.flush()
                time.sleep(o["interval"])
        except KeyboardInterrupt:
            self.stdout.write("")
