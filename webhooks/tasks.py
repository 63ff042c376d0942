"""Webhook tasks: thin, the services decide; Celery only waits and retries."""
from __future__ import annotations

from typing import Any

from celery import shared_task

from webhooks.services import stale_deliveries, webhook_delivery_attempt


@shared_task(bind=True, name="webhooks.deliver", acks_late=True, max_retries=None, ignore_result=True)
def deliver_webhook(self: Any, delivery_id: str) -> None:
    attempt = webhook_delivery_attempt(delivery_id=delivery_id)
    if attempt.retry_in is not None:
        raise self.retry(countdown=attempt.retry_in, max_retries=None)


@shared_task(name="webhooks.requeue_stale", ignore_result=True)
def requeue_stale() -> int:
    """Pending deliveries whose message was lost (broker down when enqueued, worker killed)."""
    ids = stale_deliveries()
    for delivery_id in ids:
        deliver_webhook.apply_async(args=[delivery_id])
    return len(ids)
