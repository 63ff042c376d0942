from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest

from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, new_secret
from webhooks.tasks import deliver_webhook


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("url", "description", "agent", "enabled", "created_at")
    list_filter = ("enabled",)
    search_fields = ("url", "description")
    fields = ("url", "description", "event_types", "agent", "enabled", "created_at", "updated_at")
    readonly_fields = ("created_at", "updated_at")

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        raw = None
        if not change:
            raw = new_secret()
            obj.set_secret(raw)
        super().save_model(request, obj, form, change)
        if raw:
            # The only time the raw secret is shown; only its encrypted form is stored.
            self.message_user(request, f"Signing secret (shown once, store it now): {raw}", level=messages.WARNING)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "endpoint", "event_type", "session_id", "status", "attempts", "response_code",
                    "last_error")
    list_filter = ("status", "event_type", "endpoint")
    search_fields = ("session_id", "endpoint__url")
    readonly_fields = ("id", "endpoint", "event_type", "session_id", "seq", "payload", "status", "attempts",
                       "response_code", "last_error", "created_at", "last_attempt_at", "next_attempt_at",
                       "delivered_at")
    actions = ["retry"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Send selected deliveries again")
    def retry(self, request: HttpRequest, queryset: Any) -> None:
        ids = [str(pk) for pk in queryset.values_list("pk", flat=True)]
        queryset.update(status=DeliveryStatus.PENDING, next_attempt_at=None)
        for delivery_id in ids:
            deliver_webhook.apply_async(args=[delivery_id])
        self.message_user(request, f"{len(ids)} deliveries queued again.")
