from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from controlplane.metrics import render_latest


class Command(BaseCommand):
    help = "Print the Prometheus metrics (what /metrics serves), optionally only the series matching a prefix."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--grep", default="")

    def handle(self, *args: Any, **o: Any) -> None:
        for line in render_latest().decode().splitlines():
            if not o["grep"] or o["grep"] in line:
                self.stdout.write(line)
