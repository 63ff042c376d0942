"""Delete call recordings older than RECORDINGS_RETENTION_DAYS (or --older-than-days)."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from sessions.recording_files import recordings_purge


class Command(BaseCommand):
    help = "Delete recordings past their retention (files from storage, then rows)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than-days", type=int, default=None,
                            help="Override RECORDINGS_RETENTION_DAYS for this run (0 keeps everything).")

    def handle(self, *args: Any, older_than_days: int | None = None, **options: Any) -> None:
        if older_than_days is not None and older_than_days < 0:
            self.stderr.write("--older-than-days must be 0 or more")
            raise SystemExit(2)
        deleted = recordings_purge(older_than_days=older_than_days)
        self.stdout.write(f"deleted {deleted} recording(s)")
