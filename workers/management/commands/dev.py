from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.utils import autoreload


class Command(BaseCommand):
    help = "The embedded server (web + in-process worker + periodic loop) restarted on every code change."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=20)
        parser.add_argument("--no-reload", action="store_true")

    def handle(self, *args: Any, **o: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)

        def serve() -> None:
            call_command("embedded", host=o["host"], port=o["port"], concurrency=o["concurrency"])

        if o["no_reload"]:
            serve()
        else:
            autoreload.run_with_reloader(serve)
