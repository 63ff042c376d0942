"""Helpers shared by the fleet's management commands."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings

SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "API_KEY", "KEY")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def mask(name: str, value: Any) -> Any:
    """Secrets show only that they are set; URLs lose their passwords."""
    if isinstance(value, str) and value:
        if any(word in name.upper() for word in SECRET_WORDS) and not name.upper().endswith("_URL"):
            return "****" + (value[-2:] if len(value) > 12 else "")
        if "://" in value and "@" in value:
            scheme, rest = value.split("://", 1)
            creds, host = rest.rsplit("@", 1)
            user = creds.split(":", 1)[0]
            return f"{scheme}://{user}:****@{host}" if ":" in creds else value
    return value


def worker_argv(*, name: str, concurrency: int, queues: Sequence[str], loglevel: str) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--pool", "custom", "-c", str(concurrency),
        "-n", name, "-Q", ",".join(queues), "-l", loglevel, "--without-gossip", "--without-mingle",
    ]


def worker_env() -> dict[str, str]:
    # the threads pool with grow/shrink for remote-control autoscaling (workers/pool.py)
    return {**os.environ, "CELERY_CUSTOM_WORKER_POOL": "workers.pool:TaskPool"}


def dashboard_base_url() -> str:
    return getattr(settings, "PUBLIC_URL", "") or os.environ.get("PUBLIC_URL", "") or "http://127.0.0.1:8000"
