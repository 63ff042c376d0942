"""Operator actions on a live session from the command line.

    python manage.py session pause SESSION_ID
    python manage.py session resume SESSION_ID
    python manage.py session say SESSION_ID --text "One moment please."
    python manage.py session interrupt|end SESSION_ID

The command reaches the worker hosting the session through the channel layer (Redis), as
the API does; in embedded mode (in-memory layer) only the server process can, so use the
dashboard or the API there.
"""
from __future__ import annotations

from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.errors import DomainError
from sessions.control import local_sessions, send_session_command

ACTIONS = ("pause", "resume", "say", "interrupt", "end", "message")


class Command(BaseCommand):
    help = "Pause, resume, say, interrupt, message or end a live session (through the channel layer)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=ACTIONS)
        parser.add_argument("session_id")
        parser.add_argument("--text", default=None, help="for say and message")
        parser.add_argument("--actor", default="cli", help="who acts (recorded in the operator_action event)")

    def handle(self, *args: Any, action: str, session_id: str, text: str | None, actor: str, **o: Any) -> None:
        hosted_here = any(ctx.session_id == session_id for ctx in local_sessions())
        if isinstance(get_channel_layer(), InMemoryChannelLayer) and not hosted_here:
            raise CommandError("the in-memory channel layer cannot reach a session in another process: "
                               "set REDIS_URL (production), or use the dashboard or the API of the embedded server")
        try:
            send_session_command(session_id, action, actor=actor, text=text)
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{session_id}: {action} sent")
