from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from sessions.models import AgentSession, Participant, SessionEvent


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SessionEventInline(ReadOnlyInline):
    model = SessionEvent
    fields = ("seq", "type", "at", "data")
    readonly_fields = fields
    ordering = ("seq",)
    max_num = 0


class ParticipantInline(ReadOnlyInline):
    model = Participant
    fields = ("participant_id", "identity", "kind", "connection_state", "joined_at", "left_at")
    readonly_fields = fields


@admin.register(AgentSession)
class AgentSessionAdmin(admin.ModelAdmin):
    list_display = ("session_id", "agent", "agent_version", "room_id", "status", "started_at", "ended_at")
    list_filter = ("status", "transport")
    search_fields = ("session_id", "room_id", "agent__agent_id")
    readonly_fields = [f.name for f in AgentSession._meta.fields]
    inlines = [ParticipantInline, SessionEventInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # sessions are started by workers, not typed in
