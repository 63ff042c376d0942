from __future__ import annotations

import io
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser, SystemCheckError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from controlplane.health import run_checks
from workers.management.commands.config import effective_config


class Command(BaseCommand):
    help = "Pre-flight before a deploy: Django deploy checks, pending migrations, configuration, reachable services."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--skip-deploy-checks", action="store_true", help="e.g. in the embedded mode")

    def handle(self, *args: Any, **o: Any) -> None:
        failures: list[str] = []

        def step(name: str, ok: bool, detail: str = "") -> None:
            mark = self.style.SUCCESS("ok  ") if ok else self.style.ERROR("FAIL")
            self.stdout.write(f"[{mark}] {name}" + (f": {detail}" if detail else ""))
            if not ok:
                failures.append(name)

        if not o["skip_deploy_checks"]:
            out = io.StringIO()
            try:
                call_command("check", deploy=True, fail_level="ERROR", stdout=out, stderr=out)
                step("django deploy checks", True, out.getvalue().strip().splitlines()[-1] if out.getvalue().strip() else "")
            except SystemCheckError as exc:
                step("django deploy checks", False, str(exc).strip().splitlines()[0])
        try:
            executor = MigrationExecutor(connection)
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
            step("migrations", not plan, f"{len(plan)} pending: " + ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5]) if plan else "up to date")
        except Exception as exc:  # noqa: BLE001
            step("migrations", False, f"database unreachable: {exc}")
        _, problems = effective_config()
        step("configuration", not problems, "; ".join(problems))
        for name, result in run_checks(detail=True).items():
            step(f"service: {name}", result == "ok", "" if result == "ok" else result)
        if failures:
            raise CommandError(f"pre-flight failed: {', '.join(failures)}")
        self.stdout.write(self.style.SUCCESS("ready to deploy"))
