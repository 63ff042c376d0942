"""Personas for the webhook tests: a loopback receiver and an endpoint subscribed to it."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.webhooks.receiver import WebhookReceiver
from webhooks.models import WebhookEndpoint
from webhooks.services import webhook_endpoint_create
from webhooks.subscriptions import invalidate


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., WebhookReceiver]]:
    made: list[WebhookReceiver] = []

    def make(*codes: int) -> WebhookReceiver:
        made.append(WebhookReceiver(*codes))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    """The receivers run on 127.0.0.1, which the address guard refuses by default."""
    settings.TOOLS_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0.05


@pytest.fixture
def endpoint_for(db: Any, loopback_allowed: None) -> Callable[..., tuple[WebhookEndpoint, str]]:
    def make(url: str, *event_types: str, agent: Any = None) -> tuple[WebhookEndpoint, str]:
        return webhook_endpoint_create(url=url, event_types=list(event_types), agent=agent)

    return make


@pytest.fixture(autouse=True)
def _fresh_subscriptions() -> Iterator[None]:
    invalidate()
    yield
    invalidate()
