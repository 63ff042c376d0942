"""Nothing but the health probes (and the login pages) answers an anonymous request."""
from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

# Anonymous by design: probes for orchestrators, and the pages where one logs in.
ANONYMOUS_NAMES = {
    "health", "health-ready", "health-live", "metrics",
    "login", "logout", "password_reset", "password_reset_done", "password_reset_confirm", "password_reset_complete",
    "admin:login", "admin:logout",
}
SAMPLE = "sample-1"


def _regex_to_url(regex: str) -> str:
    """A concrete path for a regex pattern: every group becomes a sample value."""
    path = re.sub(r"\(\?P<[^>]+>[^)]*\)", "1", regex)
    path = re.sub(r"\([^)]*\)", "agents", path)  # (auth|agents|…) alternatives
    return path.lstrip("^").rstrip("$").replace("\\", "")


def _walk(resolver: URLResolver, prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str, object]]:
    for entry in resolver.url_patterns:
        pattern = entry.pattern
        if isinstance(pattern, RoutePattern):
            part = re.sub(r"<(?:\w+:)?\w+>", SAMPLE, str(pattern))
        elif isinstance(pattern, RegexPattern):
            part = _regex_to_url(pattern.regex.pattern)
        else:  # pragma: no cover - only the two Django kinds exist
            raise AssertionError(type(pattern))
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry, prefix + part, ns)
        elif isinstance(entry, URLPattern):
            yield f"{namespace}{entry.name or ''}", "/" + prefix + part, entry.callback


ROUTES = list(_walk(get_resolver()))
API_ROUTES = [(name, url, view) for name, url, view in ROUTES if url.startswith("/api/")]
OTHER_ROUTES = [(name, url, view) for name, url, view in ROUTES if not url.startswith("/api/") and name not in ANONYMOUS_NAMES]


def _methods(view: object) -> list[str]:
    cls = getattr(view, "cls", None) or getattr(view, "view_class", None)
    if cls is None:
        return ["get", "post"]
    return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)]


def test_the_walk_finds_every_api_route() -> None:
    names = {name for name, _, _ in API_ROUTES}
    expected = {
        "api-schema", "api-docs", "api-agents", "api-agent", "api-agent-activate", "api-agent-deactivate",
        "api-agent-versions", "api-jobs", "api-job", "api-job-cancel", "api-sessions", "api-session",
        "api-session-events", "api-session-say", "api-session-interrupt", "api-session-end",
        "api-session-messages", "api-workers", "api-worker-drain", "api-tools", "api-tool", "api-tool-test",
    }
    assert expected <= names, expected - names


@pytest.mark.parametrize(("name", "url", "view"), API_ROUTES, ids=[u for _, u, _ in API_ROUTES])
def test_every_api_route_answers_401_to_anonymous_requests(name: str, url: str, view: object) -> None:
    client = APIClient()
    for method in _methods(view):
        response = getattr(client, method)(url, {}, format="json") if method != "get" else client.get(url)
        assert response.status_code == 401, (method, url, response.status_code)
        assert response["WWW-Authenticate"] == "Bearer"
        if response["Content-Type"].startswith("application/json"):
            assert response.json()["detail"] == "Authentication credentials were not provided."


@pytest.mark.parametrize(("name", "url", "view"), OTHER_ROUTES, ids=[u for _, u, _ in OTHER_ROUTES])
def test_every_other_route_refuses_anonymous_requests(name: str, url: str, view: object) -> None:
    response = APIClient().get(url)
    if response.status_code in (301, 302):
        assert "login" in response["Location"], (url, response["Location"])
    else:
        assert response.status_code in (401, 403, 404, 405), (url, response.status_code)


def test_health_probes_stay_anonymous() -> None:
    client = APIClient()
    for url in ("/health", "/health/live", "/metrics"):
        assert client.get(url).status_code == 200, url
