"""Webhook endpoints (where to send which events) and their delivery log."""
from __future__ import annotations

import base64
import secrets as _secrets
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from agents.tools.secrets import decrypt_secret, encrypt_secret
from runtime.events import EVENT_TYPES
from webhooks.address import url_refusal

MAX_EVENT_TYPES = len(EVENT_TYPES)
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode()


def event_type_errors(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        return ["event_types must be a non-empty list of event type names."]
    unknown = sorted({t for t in value if t not in EVENT_TYPES})
    if unknown:
        return [f"Unknown event type(s): {', '.join(unknown)}. Known: {', '.join(sorted(EVENT_TYPES))}."]
    if len(set(value)) != len(value):
        return ["Each event type may be listed once."]
    return []


class WebhookEndpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.URLField(max_length=2000, help_text="http(s) URL the events are POSTed to.")
    description = models.CharField(max_length=255, blank=True)
    event_types = models.JSONField(default=list, help_text="Event types to send, e.g. [\"session_started\", \"call_ended\"].")
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, null=True, blank=True, related_name="webhooks",
                              help_text="Only this agent's sessions; empty for every agent.")
    enabled = models.BooleanField(default=True)
    # Fernet-encrypted (agents.tools.secrets); the raw secret is shown once, when created.
    secret_encrypted = models.TextField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.url

    @property
    def secret(self) -> str:
        return decrypt_secret(self.secret_encrypted)

    def set_secret(self, raw: str) -> None:
        self.secret_encrypted = encrypt_secret(raw)

    def clean(self) -> None:
        errors = event_type_errors(self.event_types)
        if errors:
            raise ValidationError({"event_types": errors})
        if not self.url.startswith(("http://", "https://")):
            raise ValidationError({"url": ["The URL must start with http:// or https://."]})
        refusal = url_refusal(self.url)
        if refusal:
            raise ValidationError({"url": [refusal]})


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # waiting for its first or next attempt
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # out of attempts, or refused for good (address guard, 4xx)


class WebhookDelivery(models.Model):
    """One event for one endpoint. Its id is the `webhook-id`, the same on every retry."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=64)
    session_id = models.CharField(max_length=40, blank=True)
    seq = models.PositiveBigIntegerField(null=True, blank=True)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["endpoint", "-created_at"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id} ({self.status})"

    @property
    def message_id(self) -> str:
        return f"msg_{self.id.hex}"
