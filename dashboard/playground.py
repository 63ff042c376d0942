"""Playground: pick an active agent and talk to it by text over a local-transport session."""
from __future__ import annotations

import secrets

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from agents.models import Agent
from controlplane.errors import DomainError, Throttled
from controlplane.scopes import JOBS_WRITE, SESSIONS_CONTROL
from dashboard.access import actor_name, scope_required
from workers.dispatch import job_dispatch


# the playground dispatches a job, then speaks into its session
playground_required = scope_required(JOBS_WRITE, SESSIONS_CONTROL)


@playground_required
def playground_page(request: HttpRequest) -> HttpResponse:
    agents = list(Agent.objects.active().values_list("agent_id", flat=True))
    return render(request, "dashboard/playground.html", {"nav": "playground", "agents": agents, "selected": request.GET.get("agent", "")})


@require_POST
@playground_required
def playground_start(request: HttpRequest) -> JsonResponse:
    agent_id = request.POST.get("agent", "")
    who = actor_name(request.user)
    try:
        job = job_dispatch(
            agent_id=agent_id, room=f"playground-{secrets.token_hex(4)}", transport="local",
            metadata={"playground": True, "started_by": who}, participant_identity=who, priority=1,
        )
    except Throttled as exc:
        return JsonResponse({"error": exc.message}, status=429, headers={"Retry-After": str(exc.retry_after)})
    except DomainError as exc:
        return JsonResponse({"error": exc.message, "field": exc.field}, status=exc.status_code)
    return JsonResponse({"job_id": job.job_id, "status": job.status}, status=201)
