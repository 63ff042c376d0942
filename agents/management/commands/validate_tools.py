"""Validate every tool (schema, timeout, importable code) and sync code tools into rows."""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.models import Tool
from agents.tools.errors import ToolDefinitionError
from agents.tools.http import HttpTool
from agents.tools.registry import registry
from agents.tools.sync import tool_sync


class Command(BaseCommand):
    help = "Validate all tools and sync discovered code tools into Tool rows. Exit 1 on problems."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-sync", action="store_true", help="only validate, write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        registry.ensure_discovered()
        problems: dict[str, list[str]] = dict(registry.validate_all())
        for module, error in registry.import_errors.items():
            problems.setdefault(f"module {module}", []).append(f"import failed: {error}")
        if not options["no_sync"]:
            report = tool_sync()
            for name, why in report.failed.items():
                problems.setdefault(name, []).append(f"not synced: {why}")
            self.stdout.write(
                f"synced: {len(report.created)} created, {len(report.updated)} updated, "
                f"{len(report.unchanged)} unchanged"
            )
            for name in report.orphaned:
                problems.setdefault(name, []).append("python tool row has no code in this process (module not loaded?)")
        for row in Tool.objects.all():
            try:
                row.full_clean(validate_unique=False)
            except ValidationError as exc:
                for field, msgs in exc.message_dict.items():
                    problems.setdefault(row.name, []).append(f"{field}: {' '.join(msgs)}")
            if row.kind == "http":
                try:
                    HttpTool.from_row(row)
                except ToolDefinitionError as exc:
                    problems.setdefault(row.name, []).append(str(exc))
        checked = sorted(set(registry.names()) | set(Tool.objects.values_list("name", flat=True))
                         | {f"module {m}" for m in registry.import_errors})
        for name in checked:
            if name in problems:
                for p in problems[name]:
                    self.stdout.write(self.style.ERROR(f"✗ {name}: {p}"))
            else:
                self.stdout.write(self.style.SUCCESS(f"✓ {name}"))
        if problems:
            raise CommandError(f"{len(problems)} of {len(checked)} tools have problems")
        self.stdout.write(f"all {len(checked)} tools valid")
