"""Named credentials: written in the admin (value write-only, encrypted at rest), listed by
the API with names and hosts only, referenced by agent configs with save-time checks."""
from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from agents.models import Credential

pytestmark = pytest.mark.django_db

VALUE = "sk-vendor-credential-value-0123"


@pytest.fixture
def vendor_key() -> Credential:
    row = Credential(name="vendor-key", allowed_hosts=["api.vendor.example"], description="Vendor LLM")
    row.set_value(VALUE)
    row.save()
    return row


def test_the_list_shows_names_and_hosts_never_values(reader: APIClient, vendor_key: Credential) -> None:
    response = reader.get("/api/v1/credentials/")
    assert response.status_code == 200
    [item] = response.json()["results"]
    assert set(item) == {"name", "allowed_hosts", "description", "created_at", "updated_at"}
    assert (item["name"], item["allowed_hosts"]) == ("vendor-key", ["api.vendor.example"])
    assert VALUE not in response.content.decode()
    assert vendor_key.value_encrypted not in response.content.decode()


def test_the_api_cannot_write_credentials(api_client: APIClient) -> None:
    response = api_client.post("/api/v1/credentials/", {"name": "x", "value": "v", "allowed_hosts": ["h"]},
                               format="json")
    assert response.status_code == 405
    assert not Credential.objects.exists()


def test_anonymous_callers_get_no_list(vendor_key: Credential) -> None:
    assert APIClient().get("/api/v1/credentials/").status_code in (401, 403)


def test_the_value_is_encrypted_at_rest(vendor_key: Credential) -> None:
    stored = Credential.objects.values_list("value_encrypted", flat=True).get()
    assert VALUE not in stored
    assert Credential.objects.get().secret().value == VALUE


def test_the_admin_writes_a_value_it_never_shows_back(admin_client: Any) -> None:
    created = admin_client.post("/admin/agents/credential/add/", {
        "name": "vendor-key", "value": VALUE, "hosts": "api.vendor.example\n*.vendor.example", "description": "",
    })
    assert created.status_code == 302, created.content.decode()[:2000]
    row = Credential.objects.get(name="vendor-key")
    assert row.allowed_hosts == ["api.vendor.example", "*.vendor.example"]
    assert row.secret().value == VALUE
    page = admin_client.get(f"/admin/agents/credential/{row.pk}/change/")
    assert page.status_code == 200
    assert VALUE not in page.content.decode() and row.value_encrypted not in page.content.decode()
    kept = admin_client.post(f"/admin/agents/credential/{row.pk}/change/",
                             {"value": "", "hosts": "api.vendor.example", "description": "kept"})
    assert kept.status_code == 302
    row.refresh_from_db()
    assert row.secret().value == VALUE and row.allowed_hosts == ["api.vendor.example"]


@pytest.mark.parametrize("form, field", [
    ({"name": "vendor-key", "value": "", "hosts": "api.vendor.example"}, "value"),
    ({"name": "vendor-key", "value": VALUE, "hosts": "https://api.vendor.example/v1"}, "hosts"),
    ({"name": "Vendor Key", "value": VALUE, "hosts": "api.vendor.example"}, "name"),
])
def test_the_admin_refuses_an_incomplete_credential(admin_client: Any, form: dict[str, str], field: str) -> None:
    response = admin_client.post("/admin/agents/credential/add/", {"description": "", **form})
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Credential.objects.exists()


@pytest.mark.parametrize("llm_config, message", [
    ({"api_key_env": "SECRET_KEY"}, "SECRET_KEY is not on CREDENTIAL_ENV_ALLOWLIST"),
    ({"api_key_env": "LIVEKIT_API_SECRET"}, "LIVEKIT_API_SECRET is not on CREDENTIAL_ENV_ALLOWLIST"),
    ({"api_key_credential": "nope"}, "no credential named 'nope'"),
    ({"api_key_credential": "vendor-key", "base_url": "https://llm.other.example/v1"},
     "'vendor-key' may not be sent to llm.other.example"),
    ({"api_key_credential": "vendor-key"}, "'vendor-key' may not be sent to api.openai.com"),
    ({"base_url": "http://10.0.0.5:11434/v1"}, "host 10.0.0.5 is a private or loopback address"),
    ({"base_url": "http://[2002:7f00:1::]/v1"}, "is a private or loopback address"),
    ({"base_url": "http://localhost:11434/v1"}, "PROVIDER_ALLOWED_HOSTS"),
    ({"api_key_env": "OPENAI_API_KEY", "api_key_credential": "vendor-key"}, "not both"),
])
def test_an_agent_naming_a_secret_it_may_not_use_is_refused_with_a_field_error(
    api_client: APIClient, vendor_key: Credential, llm_config: dict[str, Any], message: str
) -> None:
    response = api_client.post("/api/v1/agents/", {"agent_id": "a1", "instructions": "Hi.",
                                                   "llm_config": {"provider": "openai", **llm_config}}, format="json")
    assert response.status_code == 400, response.content
    assert message in str(response.json()["llm_config"])


def test_an_agent_may_name_an_allowed_credential_and_an_allowlisted_env(
    api_client: APIClient, vendor_key: Credential, settings: Any
) -> None:
    settings.PROVIDER_ALLOWED_HOSTS = ["ollama.internal"]
    ok = api_client.post("/api/v1/agents/", {"agent_id": "a1", "instructions": "Hi.", "llm_config": {
        "provider": "openai", "base_url": "https://api.vendor.example/v1", "api_key_credential": "vendor-key"},
        "tts_config": {"provider": "openai", "api_key_env": "OPENAI_API_KEY"},
        "stt_config": {"provider": "openai", "base_url": "http://ollama.internal:11434/v1"}}, format="json")
    assert ok.status_code == 201, ok.content
    assert VALUE not in ok.content.decode()
