"""The delivery task: thin, the service decides; Celery only waits and retries."""
from __future__ import annotations

from typing import Any

from celery import shared_task

from webhooks.services import webhook_delivery_attempt


@shared_task(bind=True, name="webhooks.deliver", acks_late=True, max_retries=None, ignore_result=True)
def deliver_webhook(self: Any, delivery_id: str) -> None:
    attempt = webhook_delivery_attempt(delivery_id=delivery_id)
    if attempt.retry_in is not None:
        raise self.retry(countdown=attempt.retry_in, max_retries=None)
