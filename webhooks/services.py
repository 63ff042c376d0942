"""Endpoint changes and delivery attempts.

An attempt signs the stored payload per Standard Webhooks (`webhook-id` = the delivery's
message id, the same on every retry; `webhook-timestamp`; `webhook-signature` = `v1,`
base64 HMAC-SHA256, made by the `standardwebhooks` package), checks the URL with the HTTP
tools' address guard and POSTs to the address that was checked. Any non-2xx answer or
connection failure is retried with exponential back-off up to WEBHOOK_MAX_ATTEMPTS; a URL
the guard refuses fails at once.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Any

import httpx
from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone
from standardwebhooks import Webhook

from agents.tools.errors import ToolError
from agents.tools.http import AddressNotAllowed, allow_private_default, pinned_target
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, new_secret

log = logging.getLogger(__name__)
USER_AGENT = "controlplane-webhooks/1"


def webhook_endpoint_create(*, url: str, event_types: list[str], agent: Any = None, description: str = "",
                            enabled: bool = True) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its raw secret (shown to the caller once, never again)."""
    raw = new_secret()
    endpoint = WebhookEndpoint(url=url, event_types=event_types, agent=agent, description=description, enabled=enabled)
    endpoint.set_secret(raw)
    endpoint.full_clean()
    endpoint.save()
    return endpoint, raw


def sign(secret: str, *, message_id: str, at: datetime, body: str) -> dict[str, str]:
    at = at.astimezone(dt_timezone.utc)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body),
    }


@dataclass(frozen=True, slots=True)
class Attempt:
    retry_in: float | None  # seconds until the next attempt; None: no more attempts


def _backoff(attempts: int) -> float:
    return float(min(settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1),
                     settings.WEBHOOK_RETRY_MAX_SECONDS))


async def _post(url: str, body: str, headers: dict[str, str]) -> int:
    pinned, host_header, extensions = await pinned_target(url, allow_private=allow_private_default())
    async with httpx.AsyncClient(timeout=settings.WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False,
                                 trust_env=False) as client:
        response = await client.post(pinned, content=body.encode(), extensions=extensions,
                                     headers={**headers, **host_header, "content-type": "application/json",
                                              "user-agent": USER_AGENT})
        return response.status_code


def webhook_delivery_attempt(*, delivery_id: str) -> Attempt:
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return Attempt(None)  # deleted, or a duplicate message after it was settled
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED,
                                                              last_error="the endpoint is disabled")
        return Attempt(None)
    # Claim this attempt: of two copies of one message, only one sends.
    won = WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING,
                                         attempts=delivery.attempts).update(attempts=F("attempts") + 1,
                                                                           last_attempt_at=timezone.now())
    if not won:
        return Attempt(None)
    attempts = delivery.attempts + 1
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)
    headers = sign(endpoint.secret, message_id=delivery.message_id, at=timezone.now(), body=body)
    code: int | None = None
    error = ""
    final = False
    try:
        code = asyncio.run(_post(endpoint.url, body, headers))
        if not 200 <= code < 300:
            error = f"the receiver answered {code}"
    except AddressNotAllowed:
        error, final = "the URL's address is not allowed (private, loopback or link-local)", True
    except ToolError as exc:
        error = str(exc).replace("the tool's", "the webhook's")
    except httpx.HTTPError as exc:
        error = f"request failed: {type(exc).__name__}"
    now = timezone.now()
    if not error:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.SUCCEEDED, response_code=code,
                                                              last_error="", delivered_at=now, next_attempt_at=None)
        return Attempt(None)
    out_of_attempts = attempts >= settings.WEBHOOK_MAX_ATTEMPTS
    if final or out_of_attempts:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, response_code=code,
                                                              last_error=error, next_attempt_at=None)
        log.warning("webhook %s to %s failed for good after %d attempt(s): %s", delivery.pk, endpoint.pk, attempts, error)
        return Attempt(None)
    delay = _backoff(attempts)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(response_code=code, last_error=error,
                                                          next_attempt_at=now + timedelta(seconds=delay))
    log.info("webhook %s attempt %d failed (%s); retrying in %.1fs", delivery.pk, attempts, error, delay)
    return Attempt(delay)


def webhook_endpoint_update(*, endpoint: WebhookEndpoint, **changes: Any) -> WebhookEndpoint:
    for field, value in changes.items():
        setattr(endpoint, field, value)
    endpoint.full_clean()
    endpoint.save()
    return endpoint


STALE_AFTER = timedelta(minutes=2)


def stale_deliveries(*, limit: int = 500) -> list[str]:
    """Pending deliveries that should have been attempted a while ago but were not."""
    overdue = timezone.now() - STALE_AFTER
    rows = (WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING)
            .filter(models.Q(next_attempt_at__isnull=True, created_at__lt=overdue) | models.Q(next_attempt_at__lt=overdue))
            .order_by("created_at").values_list("pk", flat=True)[:limit])
    return [str(pk) for pk in rows]
