from __future__ import annotations

import json

import pytest

from agents.models import Tool
from agents.tools.admin_forms import ToolAdminForm
from agents.tools.secrets import REDACTED, resolve_headers
from agents.tools.services import tool_create_http

pytestmark = pytest.mark.django_db

SECRET = "sk-admin-SECRET-555"


@pytest.fixture
def http_tool() -> Tool:
    return tool_create_http(name="crm_lookup", description="Look up a customer.", url="https://crm.example.com/lookup",
                            headers={"Authorization": {"secret": SECRET}, "X-Team": "sales"})


def form_data(form: ToolAdminForm, **changes) -> dict:
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if name in changes:
            value = changes[name]
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        if value is None:
            continue
        data[name] = value
    return data


def test_the_change_page_never_shows_the_secret_or_its_ciphertext(client, operator, http_tool) -> None:
    client.force_login(operator)
    page = client.get(f"/admin/agents/tool/{http_tool.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert SECRET not in html
    assert http_tool.http_headers["Authorization"]["encrypted"] not in html
    assert REDACTED in html and "sales" in html


def test_saving_the_redacted_form_keeps_the_secret(http_tool) -> None:
    form = ToolAdminForm(instance=http_tool)
    bound = ToolAdminForm(data=form_data(form, timeout_ms=2000), instance=http_tool)
    assert bound.is_valid(), bound.errors
    bound.save()
    http_tool.refresh_from_db()
    assert http_tool.timeout_ms == 2000
    assert resolve_headers(http_tool.http_headers)["Authorization"] == SECRET


def test_a_new_secret_is_encrypted_on_save(http_tool) -> None:
    form = ToolAdminForm(instance=http_tool)
    headers = {"Authorization": {"secret": "new-secret-1"}, "X-Team": "sales"}
    bound = ToolAdminForm(data=form_data(form, http_headers=headers), instance=http_tool)
    assert bound.is_valid(), bound.errors
    bound.save()
    http_tool.refresh_from_db()
    assert "new-secret-1" not in json.dumps(http_tool.http_headers)
    assert resolve_headers(http_tool.http_headers)["Authorization"] == "new-secret-1"


def test_bad_headers_are_a_form_error(http_tool) -> None:
    form = ToolAdminForm(instance=http_tool)
    bound = ToolAdminForm(data=form_data(form, http_headers={"X-Bad": 3}), instance=http_tool)
    assert not bound.is_valid()
    assert "http_headers" in bound.errors


def test_code_tools_are_read_only_but_for_their_run_settings(client, operator, synced_tools) -> None:
    client.force_login(operator)
    row = Tool.objects.get(name="get_weather")
    html = client.get(f"/admin/agents/tool/{row.pk}/change/").content.decode()
    assert 'name="timeout_ms"' in html and 'name="execution"' in html and 'name="enabled"' in html
    assert 'name="schema"' not in html and 'name="module"' not in html
