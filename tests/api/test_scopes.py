"""401 without a usable key, 403 without the scope the route needs, success with it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from controlplane.scopes import AGENTS_WRITE, JOBS_WRITE, READ, SESSIONS_CONTROL, WORKERS_WRITE

pytestmark = pytest.mark.django_db

# (method, path, body, scope it needs); {agent}, {job}, {session}, {worker} are filled in.
ROUTES = [
    ("get", "/api/v1/agents/", None, READ),
    ("post", "/api/v1/agents/", {"agent_id": "new-one", "instructions": "Hi."}, AGENTS_WRITE),
    ("get", "/api/v1/agents/{agent}/", None, READ),
    ("patch", "/api/v1/agents/{agent}/", {"metadata": {"team": "a"}}, AGENTS_WRITE),
    ("post", "/api/v1/agents/{agent}/activate", None, AGENTS_WRITE),
    ("delete", "/api/v1/agents/{agent}/", None, AGENTS_WRITE),
    ("post", "/api/v1/agents/{agent}/deactivate", None, AGENTS_WRITE),
    ("get", "/api/v1/agents/{agent}/versions/", None, READ),
    ("get", "/api/v1/jobs/", None, READ),
    ("post", "/api/v1/jobs/", {"agent": "{agent}", "room": "room-2"}, JOBS_WRITE),
    ("get", "/api/v1/jobs/{job}/", None, READ),
    ("post", "/api/v1/jobs/{job}/cancel", None, JOBS_WRITE),
    ("get", "/api/v1/sessions/", None, READ),
    ("get", "/api/v1/sessions/{session}/", None, READ),
    ("get", "/api/v1/sessions/{session}/events/", None, READ),
    ("post", "/api/v1/sessions/{session}/say", {"text": "Hello"}, SESSIONS_CONTROL),
    ("post", "/api/v1/sessions/{session}/interrupt", None, SESSIONS_CONTROL),
    ("post", "/api/v1/sessions/{session}/messages", {"text": "Hi there"}, SESSIONS_CONTROL),
    ("post", "/api/v1/sessions/{session}/end", None, SESSIONS_CONTROL),
    ("get", "/api/v1/workers/", None, READ),
    ("post", "/api/v1/workers/{worker}/drain", None, WORKERS_WRITE),
    ("get", "/api/v1/schema/", None, READ),
]
IDS = [f"{m.upper()} {p}" for m, p, _, _ in ROUTES]
# past the scope check, the active agent's state refuses these
REFUSED_BY_STATE = {("post", "/api/v1/agents/{agent}/activate"), ("delete", "/api/v1/agents/{agent}/")}


def _call(client: APIClient, method: str, path: str, body: Any, ids: dict[str, str]) -> Any:
    url = path.format(**ids)
    if body is not None:
        body = {k: v.format(**ids) if isinstance(v, str) else v for k, v in body.items()}
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, body or {}, format="json")


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES, ids=IDS)
def test_a_key_without_the_scope_gets_403_naming_it(
    client_with_scopes: Callable[..., APIClient], ids: dict[str, str], method: str, path: str, body: Any, scope: str
) -> None:
    other_scopes = [s for s in (READ, AGENTS_WRITE, JOBS_WRITE, SESSIONS_CONTROL, WORKERS_WRITE) if s != scope]
    response = _call(client_with_scopes(*other_scopes), method, path, body, ids)
    assert response.status_code == 403, response.content
    assert f"'{scope}'" in response.content.decode()


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES, ids=IDS)
def test_a_key_with_the_scope_is_let_through(
    client_with_scopes: Callable[..., APIClient], ids: dict[str, str], method: str, path: str, body: Any, scope: str
) -> None:
    response = _call(client_with_scopes(scope), method, path, body, ids)
    expected = (409,) if (method, path) in REFUSED_BY_STATE else (200, 201, 202)
    assert response.status_code in expected, response.content


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES, ids=IDS)
def test_a_revoked_key_gets_401(
    client_with_scopes: Callable[..., APIClient], ids: dict[str, str], method: str, path: str, body: Any, scope: str
) -> None:
    client = client_with_scopes("admin")
    client.api_key.revoke()
    response = _call(client, method, path, body, ids)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer cpk_unknown_key", "Bearer \u00e9t\u00e9"])
def test_bad_authorization_headers_get_401(db: Any, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/agents/")
    assert response.status_code == 401, response.content
    assert response.json()["detail"]


def test_an_admin_scope_key_may_do_everything(client_with_scopes: Callable[..., APIClient], ids: dict[str, str]) -> None:
    client = client_with_scopes("admin")
    for method, path, body, _ in ROUTES:
        response = _call(client, method, path, body, ids)
        assert response.status_code in (200, 201, 202, 409), (method, path, response.content)


def test_the_dashboard_login_of_a_staff_user_works_with_csrf(operator: Any, ids: dict[str, str]) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.get("/api/v1/agents/").status_code == 200
    # a session-authenticated write without the CSRF token is refused
    assert client.post(f"/api/v1/agents/{ids['agent']}/deactivate").status_code == 403


def test_a_logged_in_user_who_is_not_staff_has_no_scopes(django_user_model: Any, ids: dict[str, str]) -> None:
    user = django_user_model.objects.create_user(username="visitor", password="visitor-pass-123")
    client = APIClient()
    client.force_login(user)
    assert client.get("/api/v1/agents/").status_code == 403
