from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest

from agents import services
from agents.models import CONFIG_FIELDS, Agent, AgentVersion, Tool
from controlplane.errors import DomainError


class AgentVersionInline(admin.TabularInline):
    model = AgentVersion
    extra = 0
    can_delete = False
    fields = ("version", "created_at", "created_by", "config")
    readonly_fields = fields
    ordering = ("-version",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("agent_id", "state", "version", "updated_at")
    list_filter = ("state",)
    search_fields = ("agent_id", "instructions")
    readonly_fields = ("state", "version", "created_at", "updated_at")
    fields = ("agent_id", *CONFIG_FIELDS, "state", "version", "created_at", "updated_at")
    inlines = [AgentVersionInline]
    actions = ["activate", "deactivate"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # agent_id is the public handle applications dispatch by; it never changes
        return (*self.readonly_fields, "agent_id") if obj else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Agent, form: Any, change: bool) -> None:
        # Through the services, so every saved change makes a version and state rules hold.
        actor = f"user:{request.user.get_username()}"
        config = {field: getattr(obj, field) for field in CONFIG_FIELDS}
        if change:
            services.agent_update(agent=Agent.objects.get(pk=obj.pk), actor=actor, **config)
        else:
            created = services.agent_create(agent_id=obj.agent_id, actor=actor, **config)
            obj.pk = created.pk

    def _transition(self, request: HttpRequest, queryset: Any, action: Any, verb: str) -> None:
        for agent in queryset:
            try:
                action(agent=agent)
                self.message_user(request, f"{agent.agent_id}: {verb}.")
            except DomainError as exc:
                self.message_user(request, f"{agent.agent_id}: {exc.message}", level=messages.ERROR)

    @admin.action(description="Activate selected agents")
    def activate(self, request: HttpRequest, queryset: Any) -> None:
        self._transition(request, queryset, services.agent_activate, "activated")

    @admin.action(description="Deactivate selected agents")
    def deactivate(self, request: HttpRequest, queryset: Any) -> None:
        self._transition(request, queryset, services.agent_deactivate, "deactivated")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # agents are destroyed (a state), not deleted: their sessions keep pointing at them
        return False


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "execution", "timeout_ms", "enabled", "calls", "errors", "timeouts")
    list_filter = ("kind", "execution", "enabled")
    search_fields = ("name", "description")
    readonly_fields = ("calls", "errors", "timeouts", "total_latency_ms", "created_at", "updated_at")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
