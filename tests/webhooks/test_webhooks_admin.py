"""Endpoints in the admin: the secret is shown once on add, the guard applies, the log is listed."""
from __future__ import annotations

import json
from typing import Any

import pytest

from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db
ADD = "/admin/webhooks/webhookendpoint/add/"


def _form(url: str) -> dict[str, str]:
    return {"url": url, "description": "crm", "event_types": json.dumps(["call_ended"]), "enabled": "on"}


def test_adding_an_endpoint_shows_its_secret_once(client: Any, operator: Any, loopback_allowed: None) -> None:
    client.force_login(operator)
    page = client.post(ADD, _form("http://127.0.0.1:9/hooks"), follow=True)
    assert page.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret in page.content.decode()
    change = client.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/").content.decode()
    assert endpoint.secret not in change and endpoint.secret_encrypted not in change


def test_the_admin_refuses_a_private_address(client: Any, operator: Any, settings: Any) -> None:
    settings.TOOLS_ALLOW_PRIVATE_ADDRESSES = False
    client.force_login(operator)
    page = client.post(ADD, _form("http://10.0.0.7/hooks"))
    assert page.status_code == 200 and "private" in page.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_the_delivery_log_shows_status_attempts_code_and_error(client: Any, operator: Any,
                                                              endpoint_for: Any) -> None:
    endpoint, _ = endpoint_for("http://127.0.0.1:9/hooks", "call_ended")
    WebhookDelivery.objects.create(endpoint=endpoint, event_type="call_ended", payload={}, status="failed",
                                   attempts=8, response_code=502, last_error="the receiver answered 502")
    client.force_login(operator)
    page = client.get("/admin/webhooks/webhookdelivery/?status__exact=failed").content.decode()
    assert "call_ended" in page and "the receiver answered 502" in page and "502" in page
