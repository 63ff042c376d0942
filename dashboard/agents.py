"""Agents: list, detail, activate / deactivate."""
from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from agents import services as agent_services
from agents.models import Agent, AgentState, Tool
from controlplane.errors import DomainError
from controlplane.scopes import AGENTS_WRITE
from dashboard.access import actor_name, scope_required, watcher_required
from dashboard.selectors import agents_with_stats

PROVIDER_FIELDS = ("llm_config", "stt_config", "tts_config", "vad_config", "turn_config", "recording_config")


@watcher_required
def agent_list(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/agents.html", {"agents": agents_with_stats(), "nav": "agents"})


@watcher_required
def agent_detail(request: HttpRequest, agent_id: str) -> HttpResponse:
    agent = get_object_or_404(Agent.objects.live(), agent_id=agent_id)
    tools = {t.name: t for t in Tool.objects.filter(name__in=agent.tools)}
    context = {
        "nav": "agents",
        "agent": agent,
        "providers": [(f.replace("_config", "").upper(), json.dumps(getattr(agent, f), indent=2, sort_keys=True)) for f in PROVIDER_FIELDS],
        "tools": [(name, tools.get(name)) for name in agent.tools],
        "versions": agent.versions.all()[:20],
        "sessions": agent.sessions.all()[:20],
        "can_activate": agent.state in (AgentState.CONFIGURED, AgentState.INACTIVE),
        "can_deactivate": agent.state == AgentState.ACTIVE,
    }
    return render(request, "dashboard/agent_detail.html", context)


@require_POST
@scope_required(AGENTS_WRITE)
def agent_lifecycle(request: HttpRequest, agent_id: str, action: str) -> HttpResponse:
    agent = get_object_or_404(Agent.objects.live(), agent_id=agent_id)
    change = {"activate": agent_services.agent_activate, "deactivate": agent_services.agent_deactivate}[action]
    try:
        change(agent=agent)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Agent {agent.agent_id} {action}d by {actor_name(request.user)}.")
    return redirect("dashboard:agent", agent_id=agent.agent_id)
