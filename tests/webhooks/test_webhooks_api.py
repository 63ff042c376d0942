"""The webhook endpoints API: CRUD with scopes, the secret shown once, the delivery log."""
from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from controlplane.scopes import READ, WEBHOOKS_WRITE
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db
BODY = {"url": "http://127.0.0.1:9/hooks", "event_types": ["session_started", "call_ended"]}


def test_create_shows_the_secret_once_and_reads_never_show_it(client_with_scopes: Any, loopback_allowed: None) -> None:
    writer = client_with_scopes(READ, WEBHOOKS_WRITE)
    created = writer.post("/api/v1/webhooks/", {**BODY, "description": "crm"}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["event_types"] == BODY["event_types"]
    stored = WebhookEndpoint.objects.get(pk=body["id"])
    assert stored.secret == body["secret"] and body["secret"] not in stored.secret_encrypted

    listed = writer.get("/api/v1/webhooks/").json()["results"]
    detail = writer.get(f"/api/v1/webhooks/{body['id']}/").json()
    patched = writer.patch(f"/api/v1/webhooks/{body['id']}/", {"enabled": False}, format="json").json()
    for shown in (listed[0], detail, patched):
        assert "secret" not in shown and body["secret"] not in str(shown)
    assert patched["enabled"] is False


def test_reads_need_read_and_changes_need_webhooks_write(client_with_scopes: Any, loopback_allowed: None) -> None:
    reader = client_with_scopes(READ)
    assert reader.get("/api/v1/webhooks/").status_code == 200
    assert reader.post("/api/v1/webhooks/", BODY, format="json").status_code == 403
    created = client_with_scopes(WEBHOOKS_WRITE).post("/api/v1/webhooks/", BODY, format="json").json()
    assert reader.patch(f"/api/v1/webhooks/{created['id']}/", {"enabled": False}, format="json").status_code == 403
    assert reader.delete(f"/api/v1/webhooks/{created['id']}/").status_code == 403
    assert client_with_scopes(WEBHOOKS_WRITE).get("/api/v1/webhooks/").status_code == 403  # no read scope
    assert APIClient().get("/api/v1/webhooks/").status_code == 401


def test_a_private_address_url_is_refused_when_created_and_when_changed(api_client: Any, settings: Any) -> None:
    settings.TOOLS_ALLOW_PRIVATE_ADDRESSES = False
    for url in ("http://127.0.0.1:8080/hooks", "http://10.1.2.3/h", "http://169.254.169.254/latest", "http://[::1]/h",
                "http://localhost:9/h"):
        response = api_client.post("/api/v1/webhooks/", {**BODY, "url": url}, format="json")
        assert response.status_code == 400, (url, response.json())
        assert "private" in str(response.json()["url"]), response.json()
    assert not WebhookEndpoint.objects.exists()

    settings.TOOLS_ALLOW_PRIVATE_ADDRESSES = True
    created = api_client.post("/api/v1/webhooks/", BODY, format="json").json()
    settings.TOOLS_ALLOW_PRIVATE_ADDRESSES = False
    response = api_client.patch(f"/api/v1/webhooks/{created['id']}/", {"url": "http://192.168.1.5/h"}, format="json")
    assert response.status_code == 400 and "private" in str(response.json()["url"])
    assert WebhookEndpoint.objects.get(pk=created["id"]).url == BODY["url"]


@pytest.mark.parametrize(("body", "field", "fragment"), [
    ({"event_types": ["no_such_event"]}, "event_types", "unknown event type"),
    ({"event_types": []}, "event_types", ""),
    ({"url": "ftp://example.com/x"}, "url", ""),
    ({"agent": "nobody"}, "agent", "not found"),
    ({"secret": "whsec_mine"}, "secret", "unknown field"),
])
def test_bad_input_is_a_400_naming_the_field(api_client: Any, loopback_allowed: None, body: dict[str, Any],
                                              field: str, fragment: str) -> None:
    response = api_client.post("/api/v1/webhooks/", {**BODY, **body}, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert fragment.lower() in str(response.json()[field]).lower()


def test_patch_cannot_set_the_secret_and_delete_removes_the_endpoint(api_client: Any, loopback_allowed: None) -> None:
    created = api_client.post("/api/v1/webhooks/", BODY, format="json").json()
    response = api_client.patch(f"/api/v1/webhooks/{created['id']}/", {"secret": "whsec_x"}, format="json")
    assert response.status_code == 400 and "secret" in response.json()
    assert api_client.delete(f"/api/v1/webhooks/{created['id']}/").status_code == 204
    assert api_client.get(f"/api/v1/webhooks/{created['id']}/").status_code == 404
    assert api_client.get("/api/v1/webhooks/not-a-uuid/").status_code == 404


def test_the_delivery_log_lists_status_attempts_response_code_and_last_error(
        api_client: Any, loopback_allowed: None) -> None:
    created = api_client.post("/api/v1/webhooks/", BODY, format="json").json()
    WebhookDelivery.objects.create(endpoint_id=created["id"], event_type="call_ended", session_id="ses_1",
                                   payload={"type": "call_ended"}, status="failed", attempts=8, response_code=500,
                                   last_error="the receiver answered 500")
    WebhookDelivery.objects.create(endpoint_id=created["id"], event_type="session_started", session_id="ses_1",
                                   payload={}, status="succeeded", attempts=1, response_code=200)
    log = api_client.get(f"/api/v1/webhooks/{created['id']}/deliveries/").json()["results"]
    assert {(d["event_type"], d["status"], d["attempts"], d["response_code"]) for d in log} == {
        ("call_ended", "failed", 8, 500), ("session_started", "succeeded", 1, 200)}
    failed = api_client.get(f"/api/v1/webhooks/{created['id']}/deliveries/?status=failed").json()["results"]
    assert [d["last_error"] for d in failed] == ["the receiver answered 500"]
    assert failed[0]["webhook_id"].startswith("msg_") and "payload" not in failed[0]
