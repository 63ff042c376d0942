from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.login_link import MAX_AGE_SECONDS, login_token
from workers.cli import dashboard_base_url


class Command(BaseCommand):
    help = "Print the dashboard URL and a one-time login link for a staff user."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="", help="Default: the first superuser.")
        parser.add_argument("--url", default="", help="Public base URL (default PUBLIC_URL or http://127.0.0.1:8000).")

    def handle(self, *args: Any, **o: Any) -> None:
        users = get_user_model().objects.filter(is_active=True, is_staff=True)
        user = users.filter(username=o["username"]).first() if o["username"] else users.order_by("-is_superuser", "pk").first()
        if user is None:
            raise CommandError("no active staff user; create one with `manage.py ensure_login`")
        base = (o["url"] or dashboard_base_url()).rstrip("/")
        self.stdout.write(f"dashboard: {base}/")
        self.stdout.write(f"one-time login for {user.get_username()} (valid {MAX_AGE_SECONDS // 60} min): {base}/login/{login_token(user)}")
