from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.models import ApiKey
from controlplane.scopes import ALL_SCOPES


class Command(BaseCommand):
    help = "Create an API key. The raw key is printed alone on the last line (scripts rely on that)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", required=True, help=f"Comma-separated: {', '.join(ALL_SCOPES)}")

    def handle(self, *args: Any, name: str, scopes: str, **options: Any) -> None:
        scope_list = [s.strip() for s in scopes.split(",") if s.strip()]
        try:
            key, raw = ApiKey.generate(name=name, scopes=scope_list)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())) from None
        self.stderr.write(f"Created API key '{key.name}' (prefix {key.prefix}) with scopes {', '.join(key.scopes)}.")
        self.stderr.write("Store it now: only its hash is kept.")
        self.stdout.write(raw)
