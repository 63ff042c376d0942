"""Run one tool call and print its result and duration."""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.models import Tool
from agents.tools.registry import registry
from agents.tools.services import tool_test
from agents.tools.sync import tool_sync


class Command(BaseCommand):
    help = 'Run a tool: test_tool NAME --args \'{"city": "Paris"}\''

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--args", dest="tool_args", default="{}", help="the arguments as a JSON object")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        registry.ensure_discovered()
        row = Tool.objects.filter(name=name).first()
        if row is None and registry.get(name) is not None:
            tool_sync()
            row = Tool.objects.filter(name=name).first()
        if row is None:
            available = ", ".join(sorted(set(registry.names()) | set(Tool.objects.values_list("name", flat=True))))
            raise CommandError(f"unknown tool {name!r}; available: {available or 'none'}")
        try:
            result = tool_test(tool=row, arguments=options["tool_args"])
        except Exception as exc:  # a domain error such as a disabled tool
            raise CommandError(str(getattr(exc, "message", exc))) from None
        if options["json"]:
            self.stdout.write(json.dumps({
                "output": result.output, "is_error": result.is_error,
                "error_kind": result.error_kind, "duration_ms": round(result.duration_ms, 3),
            }))
        else:
            status = f"error ({result.error_kind})" if result.is_error else "ok"
            self.stdout.write(f"result: {result.output}")
            self.stdout.write(f"status: {status}")
            self.stdout.write(f"duration: {result.duration_ms:.3f} ms")
        if result.is_error:
            raise CommandError(f"tool call failed: {result.error_kind}")
