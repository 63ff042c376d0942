from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest

from agents import credential_admin  # noqa: F401  (registers the Credential admin)
from agents import services
from agents.models import CONFIG_FIELDS, Agent, AgentVersion, Tool
from agents.tools.admin_forms import ToolAdminForm
from agents.tools.sync import tool_sync
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
    form = ToolAdminForm
    list_display = ("name", "kind", "execution", "timeout_ms", "enabled", "calls", "errors", "timeouts", "avg_latency")
    list_filter = ("kind", "execution", "enabled")
    search_fields = ("name", "description")
    readonly_fields = ("calls", "errors", "timeouts", "total_latency_ms", "avg_latency", "created_at", "updated_at")
    actions = ("sync_discovered_tools",)
    # Code tools are defined by their code (synced at start): only these stay editable.
    CODE_TOOL_EDITABLE = ("timeout_ms", "execution", "enabled", "metadata")

    @admin.display(description="avg latency (ms)")
    def avg_latency(self, obj: Tool) -> str:
        return f"{obj.average_latency_ms:.2f}"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.kind == "python":
            readonly += [f.name for f in Tool._meta.fields if f.editable and f.name not in self.CODE_TOOL_EDITABLE and f.name != "id"]
        return readonly

    @admin.action(description="Sync discovered code tools into rows")
    def sync_discovered_tools(self, request: HttpRequest, queryset: Any) -> None:
        report = tool_sync()
        self.message_user(request, f"{len(report.created)} created, {len(report.updated)} updated, {len(report.unchanged)} unchanged")
        for name, why in report.failed.items():
            self.message_user(request, f"{name}: {why}", level=messages.ERROR)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
