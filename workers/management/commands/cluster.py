from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Count, Q

from workers.autoscale import fleet_capacity
from workers.cli import table
from workers.models import JobStatus, Worker


def workers_snapshot(include_offline: bool = False) -> list[Worker]:
    qs = Worker.objects.annotate(n_active=Count("jobs", filter=Q(jobs__status__in=(JobStatus.ASSIGNED, JobStatus.RUNNING))))
    if not include_offline:
        qs = qs.exclude(status="offline")
    return list(qs.order_by("hostname", "worker_id"))


class Command(BaseCommand):
    help = "Nodes (hosts) and their workers: status, capacity, load, circuit, heartbeat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="Include offline workers.")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **o: Any) -> None:
        workers = workers_snapshot(o["all"])
        by_node: dict[str, list[Worker]] = defaultdict(list)
        for w in workers:
            by_node[w.hostname].append(w)
        if o["json"]:
            self.stdout.write(json.dumps({
                "nodes": {node: [{"worker_id": w.worker_id, "status": w.status, "capacity": w.capacity, "active_jobs": w.n_active,
                                  "load": w.load, "circuit": w.circuit_state, "region": w.region, "version": w.version}
                                 for w in ws] for node, ws in by_node.items()},
                "fleet": fleet_capacity(),
            }, default=str))
            return
        for node, ws in by_node.items():
            self.stdout.write(f"node {node or '?'}: {len(ws)} worker(s), {sum(w.capacity for w in ws)} slots")
            self.stdout.write(table(
                ["worker", "status", "active/cap", "load", "circuit", "region", "version", "heartbeat"],
                [[w.worker_id, w.status, f"{w.n_active}/{w.capacity}", f"{w.load:.2f}", w.circuit_state, w.region, w.version,
                  w.last_heartbeat_at.strftime("%H:%M:%S") if w.last_heartbeat_at else "-"] for w in ws]))
            self.stdout.write("")
        fleet = fleet_capacity()
        self.stdout.write(f"fleet: {fleet['workers']} online, capacity {fleet['capacity']}, active {fleet['active_jobs']}, "
                          f"pending {fleet['pending_jobs']}, desired capacity {fleet['desired_capacity']}, "
                          f"autoscale {'on' if fleet['autoscale'] else 'off'}")
