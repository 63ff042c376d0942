"""List the tools: discovered code tools and the Tool rows (HTTP tools, settings, stats)."""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from agents.models import Tool
from agents.tools.registry import registry


class Command(BaseCommand):
    help = "List registered tools with their kind, execution, timeout and call stats."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON object per tool")
        parser.add_argument("--schema", action="store_true", help="include the OpenAI schema")

    def handle(self, *args: Any, **options: Any) -> None:
        registry.ensure_discovered()
        rows = {t.name: t for t in Tool.objects.all()}
        names = sorted(set(rows) | set(registry.names()))
        if not names:
            self.stdout.write("no tools")
            return
        for name in names:
            row, code = rows.get(name), registry.get(name)
            info = {
                "name": name,
                "kind": row.kind if row else code.kind,  # type: ignore[union-attr]
                "execution": row.execution if row else (getattr(code, "execution", None) or "inline"),
                "timeout_ms": row.timeout_ms if row else getattr(code, "timeout_ms", None),
                "enabled": row.enabled if row else True,
                "in_db": row is not None,
                "loaded": code is not None or (row is not None and row.kind == "http"),
                "calls": row.calls if row else 0,
                "errors": row.errors if row else 0,
                "timeouts": row.timeouts if row else 0,
                "avg_ms": round(row.average_latency_ms, 3) if row else 0.0,
                "description": row.description if row else code.description,  # type: ignore[union-attr]
            }
            if options["schema"]:
                info["schema"] = code.openai_schema() if code else {"type": "function", "function": row.schema}  # type: ignore[union-attr]
            if options["json"]:
                self.stdout.write(json.dumps(info))
            else:
                flags = "" if info["enabled"] else " (disabled)"
                flags += "" if info["in_db"] else " (not synced)"
                flags += "" if info["loaded"] else " (no code in this process)"
                self.stdout.write(
                    f"{name:<28} {info['kind']:<6} {info['execution']:<6} {info['timeout_ms'] or '-':>7} ms  "
                    f"calls={info['calls']} errors={info['errors']} timeouts={info['timeouts']} "
                    f"avg={info['avg_ms']}ms{flags}\n    {info['description']}"
                )
