"""Health probes (anonymous, cheap), Prometheus metrics and the authenticated /status."""
from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_auth import request_has_scope
from controlplane.health import run_checks
from controlplane.models import ApiKey
from controlplane.scopes import READ
from dashboard import fleet
from server.metrics import render_latest


@never_cache
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "alive"})


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
        workers = fleet.workers_overview()
        online = [w for w in workers if w["status"] == "online"]
        body = {
            "status": "ok",
            "time": timezone.now(),
            "workers": {
                "by_status": fleet.workers_by_status(),
                "capacity": sum(w["capacity"] for w in online),
                "active_jobs": sum(w["active_jobs"] for w in online),
                "nodes": workers,
            },
            "queue": fleet.queue_overview(),
            "jobs": fleet.jobs_by_status(),
            "sessions": fleet.sessions_by_status(),
            "capacity": fleet.fleet_capacity(),
            "dispatch_strategy": settings.DISPATCH_STRATEGY,
        }
        return Response(body)


status = never_cache(StatusView.as_view())
