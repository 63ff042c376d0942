"""Which endpoints want which event types: read from the database at most every few seconds.

The event sink's writer thread asks for every stored batch, so this must be cheap: a dict
lookup while the cache is fresh. Saving or deleting an endpoint clears this process's cache
(signals); other processes see the change within WEBHOOK_SUBSCRIPTIONS_TTL_SECONDS.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from django.conf import settings

from webhooks.models import WebhookEndpoint


@dataclass(frozen=True, slots=True)
class Subscription:
    endpoint_id: uuid.UUID
    agent_pk: int | None  # None: every agent


_lock = threading.Lock()
_by_type: dict[str, list[Subscription]] = {}
_expires_at = 0.0


def subscriptions() -> dict[str, list[Subscription]]:
    global _by_type, _expires_at
    now = time.monotonic()
    if now < _expires_at:
        return _by_type
    with _lock:
        if now < _expires_at:
            return _by_type
        table: dict[str, list[Subscription]] = {}
        rows = WebhookEndpoint.objects.filter(enabled=True).values_list("id", "event_types", "agent_id")
        for endpoint_id, event_types, agent_pk in rows:
            for event_type in event_types or ():
                table.setdefault(str(event_type), []).append(Subscription(endpoint_id, agent_pk))
        _by_type = table
        _expires_at = time.monotonic() + settings.WEBHOOK_SUBSCRIPTIONS_TTL_SECONDS
        return _by_type


def invalidate() -> None:
    global _expires_at
    with _lock:
        _expires_at = 0.0
