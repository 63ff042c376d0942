"""Health probes (anonymous, cheap), Prometheus metrics and the authenticated /status.

`/health/ready` checks the database, the Celery broker and the channel layer, each in its
own thread with a short deadline, so a hung dependency makes the probe answer 503 quickly
instead of hanging the orchestrator's probe.
"""
from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane import selectors
from controlplane.api_auth import request_has_scope
from controlplane.metrics import render_latest
from controlplane.models import ApiKey
from controlplane.scopes import READ

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0
_REDIS_SOCKET_TIMEOUT = 1.0


@never_cache
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "alive"})


def _check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # this thread's own connection; don't leave it open


def _ping_redis(url: str) -> None:
    import redis

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
    from controlplane.celery import app

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
    from channels.layers import get_channel_layer

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


@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    checks = run_checks()
    ok = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503)


def _metrics_token_matches(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return True  # no token configured: anonymous, like the other probes
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme == "Bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text. Worker names and job counts are not for everyone: with METRICS_TOKEN
    set, the scraper sends `Authorization: Bearer <token>`."""
    if not _metrics_token_matches(request):
        response = HttpResponse("Send Authorization: Bearer <METRICS_TOKEN>.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_latest(), content_type=CONTENT_TYPE_LATEST)


class CanReadStatus(BasePermission):
    """An API key with `read`, or a logged-in user holding the `read` scope's view permissions
    (the fleet's host names and versions are not for every account)."""

    message = "This API key lacks the 'read' scope."

    def has_permission(self, request: Any, view: Any) -> bool:
        if not isinstance(request.auth, ApiKey):
            self.message = "This user lacks the 'read' scope (the view permissions on agents, tools, jobs, workers and sessions)."
        return bool(request.user and request.user.is_authenticated) and request_has_scope(request, READ)


class StatusView(APIView):
    permission_classes = [CanReadStatus]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        workers = selectors.workers_overview()
        online = [w for w in workers if w["status"] == "online"]
        body = {
            "status": "ok",
            "time": timezone.now(),
            "workers": {
                "by_status": selectors.workers_by_status(),
                "capacity": sum(w["capacity"] for w in online),
                "active_jobs": sum(w["active_jobs"] for w in online),
                "nodes": workers,
            },
            "queue": selectors.queue_overview(),
            "jobs": selectors.jobs_by_status(),
            "sessions": selectors.sessions_by_status(),
            "capacity": selectors.fleet_capacity(),
            "dispatch_strategy": settings.DISPATCH_STRATEGY,
        }
        return Response(body)


status = never_cache(StatusView.as_view())
