from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workers.cli import mask
from workers.node import autoscale_enabled, options_from_env

KNOBS = (
    "DEBUG", "EMBEDDED", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "SECRET_KEY",
    "FIELD_ENCRYPTION_KEY", "ALLOWED_HOSTS", "LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "DISPATCH_STRATEGY",
    "JOB_QUEUE_LIMIT", "JOB_MAX_ATTEMPTS", "JOB_LEASE_SECONDS", "WORKER_HEARTBEAT_SECONDS", "WORKER_OFFLINE_AFTER_SECONDS",
    "CIRCUIT_BREAKER_THRESHOLD", "CIRCUIT_BREAKER_COOLDOWN_SECONDS", "DISPATCH_RATE_LIMIT_PER_MINUTE", "TOOL_MODULES",
    "LOG_LEVEL", "CELERY_BROKER_TRANSPORT_OPTIONS",
)


def effective_config() -> tuple[dict[str, Any], list[str]]:
    problems: list[str] = []
    config: dict[str, Any] = {name: mask(name, getattr(settings, name, None)) for name in KNOBS}
    config["DATABASE_ENGINE"] = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    config["AUTOSCALE"] = autoscale_enabled()
    try:
        options = options_from_env()
        config["worker"] = {k: mask(k, v.get_secret_value() if hasattr(v, "get_secret_value") else v)
                            for k, v in options.model_dump().items()}
    except ValueError as exc:
        problems.append(str(exc))
    if settings.JOB_LEASE_SECONDS <= settings.WORKER_HEARTBEAT_SECONDS:
        problems.append("JOB_LEASE_SECONDS must be longer than WORKER_HEARTBEAT_SECONDS, or leases expire between renewals")
    if settings.WORKER_OFFLINE_AFTER_SECONDS <= settings.WORKER_HEARTBEAT_SECONDS:
        problems.append("WORKER_OFFLINE_AFTER_SECONDS must be longer than WORKER_HEARTBEAT_SECONDS")
    if bool(settings.LIVEKIT_URL) != bool(settings.LIVEKIT_API_KEY and settings.LIVEKIT_API_SECRET):
        problems.append("LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set together")
    if not settings.EMBEDDED and settings.SECRET_KEY.startswith("embedded-mode-insecure"):
        problems.append("SECRET_KEY is the embedded development key; set one for production")
    return config, problems


class Command(BaseCommand):
    help = "Print the effective configuration (secrets masked) and validate it; exits non-zero on problems."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **o: Any) -> None:
        config, problems = effective_config()
        if o["json"]:
            self.stdout.write(json.dumps({"config": config, "problems": problems}, indent=2, default=str))
        else:
            for key, value in config.items():
                if isinstance(value, dict):
                    for sub, v in value.items():
                        self.stdout.write(f"{key}.{sub} = {v}")
                else:
                    self.stdout.write(f"{key} = {value}")
        if problems:
            raise CommandError("invalid configuration:\n  " + "\n  ".join(problems))
        if not o["json"]:
            self.stdout.write(self.style.SUCCESS("configuration OK"))
