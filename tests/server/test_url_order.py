"""The dispatch route is the first Django tries (it resolves on every POST /api/v1/jobs/), and
moving it there changed no URL's view."""
from __future__ import annotations

import pytest
from django.urls import get_resolver, resolve

from server import api_urls


def test_the_jobs_routes_come_first() -> None:
    first = get_resolver().url_patterns[0]
    assert str(first.pattern) == "api/v1/" and first.urlconf_module is api_urls
    assert [p.name for p in api_urls.urlpatterns[:3]] == ["api-jobs", "api-job", "api-job-cancel"]


@pytest.mark.parametrize(("path", "name"), [
    ("/api/v1/jobs/", "api-jobs"), ("/api/v1/jobs/j-1/", "api-job"), ("/api/v1/jobs/j-1/cancel", "api-job-cancel"),
    ("/api/v1/agents/", "api-agents"), ("/api/v1/tools/t/", "api-tool"), ("/api/v1/schema/", "api-schema"),
    ("/api/v1/workers/w/drain", "api-worker-drain"), ("/health", "health"), ("/health/ready", "health-ready"),
    ("/metrics", "metrics"), ("/jobs/", "jobs"), ("/jobs/j-1/", "job"), ("/", "overview"),
])
def test_each_url_resolves_to_its_view_as_before(path: str, name: str) -> None:
    assert resolve(path).url_name == name
