"""Endpoint changes clear this process's subscription cache at once."""
from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save

from webhooks.models import WebhookEndpoint
from webhooks.subscriptions import invalidate


def _changed(**_: Any) -> None:
    invalidate()


def connect() -> None:
    post_save.connect(_changed, sender=WebhookEndpoint, dispatch_uid="webhooks-endpoint-saved")
    post_delete.connect(_changed, sender=WebhookEndpoint, dispatch_uid="webhooks-endpoint-deleted")
