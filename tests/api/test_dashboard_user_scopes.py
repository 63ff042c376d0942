"""Dashboard (session) users get API scopes from their Django permissions, never from is_staff."""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from rest_framework.test import APIClient

from controlplane.scopes import SCOPE_PERMISSIONS
from tests.api.test_scopes import IDS, REFUSED_BY_STATE, ROUTES, _call

pytestmark = pytest.mark.django_db

HTTP_TOOL = {
    "name": "crm_lookup", "description": "Look up a customer.", "url": "https://crm.example.com/lookup",
    "parameters": {"type": "object", "properties": {}, "required": []}, "timeout_ms": 3000,
}


def logged_in(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def with_permissions(user: Any, *names: str) -> Any:
    group, _ = Group.objects.get_or_create(name=f"grants-{'-'.join(sorted(names))}"[:150])
    for name in names:
        app_label, codename = name.split(".")
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    user.groups.add(group)
    return type(user).objects.get(pk=user.pk)  # a fresh row: permissions are cached per instance


@pytest.fixture
def bare_staff(django_user_model: Any) -> Any:
    """is_staff and nothing else: may open the admin, holds no permission."""
    return django_user_model.objects.create_user(username="bare-staff", password="bare-staff-pass-1", is_staff=True)


def test_a_staff_user_without_permissions_may_not_create_tools(bare_staff: Any) -> None:
    response = logged_in(bare_staff).post("/api/v1/tools/", HTTP_TOOL, format="json")
    assert response.status_code == 403 and "'tools:write'" in response.json()["detail"]


def test_a_staff_user_without_permissions_may_not_drain_workers(bare_staff: Any, worker: Any) -> None:
    response = logged_in(bare_staff).post(f"/api/v1/workers/{worker.worker_id}/drain", {}, format="json")
    assert response.status_code == 403 and "'workers:write'" in response.json()["detail"]
    worker.refresh_from_db()
    assert worker.status == "online"


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES, ids=IDS)
def test_a_staff_user_without_permissions_gets_403_everywhere(
    bare_staff: Any, ids: dict[str, str], method: str, path: str, body: Any, scope: str
) -> None:
    response = _call(logged_in(bare_staff), method, path, body, ids)
    assert response.status_code == 403, response.content


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES, ids=IDS)
def test_a_user_whose_group_grants_the_scopes_permissions_is_let_through(
    bare_staff: Any, ids: dict[str, str], method: str, path: str, body: Any, scope: str
) -> None:
    user = with_permissions(bare_staff, *SCOPE_PERMISSIONS[scope])
    response = _call(logged_in(user), method, path, body, ids)
    expected = (409,) if (method, path) in REFUSED_BY_STATE else (200, 201, 202)
    assert response.status_code in expected, response.content


def test_tool_writers_create_tools_and_nothing_else(bare_staff: Any, worker: Any) -> None:
    client = logged_in(with_permissions(bare_staff, *SCOPE_PERMISSIONS["tools:write"]))
    assert client.post("/api/v1/tools/", HTTP_TOOL, format="json").status_code == 201
    assert client.post(f"/api/v1/workers/{worker.worker_id}/drain", {}, format="json").status_code == 403


def test_one_missing_permission_withholds_the_scope(bare_staff: Any, worker: Any) -> None:
    user = with_permissions(bare_staff, *SCOPE_PERMISSIONS["read"][:-1])
    assert logged_in(user).get("/api/v1/workers/").status_code == 403


def test_a_superuser_holds_every_scope(django_user_model: Any, worker: Any) -> None:
    root = django_user_model.objects.create_superuser(username="root", password="root-pass-123")
    client = logged_in(root)
    assert client.post("/api/v1/tools/", HTTP_TOOL, format="json").status_code == 201
    assert client.post(f"/api/v1/workers/{worker.worker_id}/drain", {}, format="json").status_code == 202


def test_a_deactivated_user_loses_the_scopes(django_user_model: Any) -> None:
    user = with_permissions(django_user_model.objects.create_user(username="ops", password="ops-pass-1234"), *SCOPE_PERMISSIONS["read"])
    client = logged_in(user)
    assert client.get("/api/v1/agents/").status_code == 200
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    assert client.get("/api/v1/agents/").status_code in (401, 403)
