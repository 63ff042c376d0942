from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.health import run_checks


class Command(BaseCommand):
    help = "Check the database, broker and channel layer (what /health/ready checks); --url probes a running node."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", help="e.g. http://worker-1:8081/health/ready")

    def handle(self, *args: Any, **o: Any) -> None:
        if o["url"]:
            try:
                with urllib.request.urlopen(o["url"], timeout=5) as response:
                    self.stdout.write(f"{response.status} {response.read().decode()}")
                    return
            except urllib.error.HTTPError as exc:
                raise CommandError(f"{exc.code} {exc.read().decode()}") from None
            except OSError as exc:
                raise CommandError(f"unreachable: {exc}") from None
        checks = run_checks(detail=True)  # an operator at the console: the full reason
        self.stdout.write(json.dumps(checks, indent=2))
        bad = {k: v for k, v in checks.items() if v != "ok"}
        if bad:
            raise CommandError(f"not ready: {', '.join(bad)}")
