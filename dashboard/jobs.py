"""Jobs: filterable list, detail, cancel, and a small JSON status for the playground."""
from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from agents.models import Agent
from controlplane.errors import DomainError
from controlplane.scopes import JOBS_WRITE
from dashboard.access import actor_name, scope_required, watcher_required
from sessions.models import AgentSession
from workers.dispatch import job_cancel_request
from workers.models import Job, JobStatus


@watcher_required
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = Job.objects.select_related("agent", "assigned_worker")
    status = request.GET.get("status", "")
    agent = request.GET.get("agent", "")
    if status in JobStatus.values:
        jobs = jobs.filter(status=status)
    if agent:
        jobs = jobs.filter(agent__agent_id=agent)
    page = Paginator(jobs, 50).get_page(request.GET.get("page"))
    context = {
        "nav": "jobs", "page": page, "status": status, "agent": agent, "statuses": JobStatus.values,
        "agents": Agent.objects.values_list("agent_id", flat=True),
    }
    return render(request, "dashboard/jobs.html", context)


@watcher_required
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("agent", "assigned_worker"), pk=job_id)
    session = AgentSession.objects.filter(job=job).first()
    return render(request, "dashboard/job_detail.html", {"nav": "jobs", "job": job, "session": session})


@watcher_required
def job_status(request: HttpRequest, job_id: str) -> JsonResponse:
    job = get_object_or_404(Job, pk=job_id)
    session = AgentSession.objects.filter(job=job).values("session_id", "status").first()
    return JsonResponse({
        "job_id": job.job_id, "status": job.status, "failure_reason": job.failure_reason,
        "session_id": session["session_id"] if session else None,
        "session_status": session["status"] if session else None,
    })


@require_POST
@scope_required(JOBS_WRITE)
def job_cancel(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        job_cancel_request(job_id=job_id, actor=actor_name(request.user))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Job {job_id} cancelled.")
    return redirect("dashboard:job", job_id=job_id)
