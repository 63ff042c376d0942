"""Readiness checks of the services every process needs: the database, the Celery broker and
the channel layer, each in its own thread with a short deadline, so a hung dependency makes
`/health/ready` (server/probes.py) answer 503 quickly instead of hanging the orchestrator's
probe; `manage.py health` and `deploy` run them too.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

from controlplane.celery import app

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0
_REDIS_SOCKET_TIMEOUT = 1.0


def _check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # this thread's own connection; don't leave it open


def _ping_redis(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=_REDIS_SOCKET_TIMEOUT, socket_timeout=_REDIS_SOCKET_TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()


def _check_broker() -> None:
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://", "unix://")):
        _ping_redis(url)
        return
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=CHECK_TIMEOUT_SECONDS)


def _check_channel_layer() -> None:
    config = settings.CHANNEL_LAYERS.get("default")
    if not config:
        raise RuntimeError("no channel layer configured")
    backend = config["BACKEND"]
    if backend.startswith("channels_redis."):
        for host in config.get("CONFIG", {}).get("hosts", []):
            address = host.get("address") if isinstance(host, dict) else host
            if isinstance(address, str):
                _ping_redis(address)
            else:  # (host, port)
                _ping_redis(f"redis://{address[0]}:{address[1]}/0")
        return
    if get_channel_layer() is None:
        raise RuntimeError(f"channel layer {backend} could not be built")


CHECKS: dict[str, Callable[[], None]] = {
    "database": _check_database,
    "broker": _check_broker,
    "channel_layer": _check_channel_layer,
}


def run_checks(timeout: float = CHECK_TIMEOUT_SECONDS, *, detail: bool = False) -> dict[str, str]:
    """Run every check in parallel; each gets "ok" or why it failed: the exception's type
    only, unless `detail` (the CLI, run by an operator). An exception's text names hosts,
    ports and users, which an anonymous probe must not hand out; it goes to the log."""
    results: dict[str, str] = {}

    def run(name: str, check: Callable[[], None]) -> None:
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
            reason = f"{type(exc).__name__}: {exc}" if detail else f"{type(exc).__name__} (details in the server log)"
            results[name] = reason[:500]

    threads = {name: threading.Thread(target=run, args=(name, check), name=f"ready-{name}", daemon=True) for name, check in CHECKS.items()}
    deadline = time.monotonic() + timeout
    for thread in threads.values():
        thread.start()
    for thread in threads.values():
        thread.join(max(0.0, deadline - time.monotonic()))
    return {name: results.get(name, f"timed out after {timeout:g} s") for name in CHECKS}
