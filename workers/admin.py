from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from workers.models import Job, Worker


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("job_id", "job_type", "agent", "room_name", "status", "priority", "attempts", "assigned_worker", "created_at")
    list_filter = ("status", "job_type", "transport")
    search_fields = ("job_id", "room_name", "agent__agent_id")
    readonly_fields = ("status", "assigned_worker", "attempts", "lease_expires_at", "failure_reason", "idempotency_key",
                       "api_key", "created_at", "assigned_at", "started_at", "completed_at", "agent_version")


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ("worker_id", "worker_type", "region", "status", "active_jobs", "capacity", "load", "circuit_state", "last_heartbeat_at")
    list_filter = ("status", "worker_type", "circuit_state")
    readonly_fields = ("started_at", "last_heartbeat_at", "consecutive_failures", "circuit_opened_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # workers register themselves
