"""An Authorization header of whitespace only (or other odd forms) is a 401, never a 500."""
from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

ODD_HEADERS = ["\xa0", " ", "\t", "\xa0\xa0Bearer", "Bearer \xa0"]


@pytest.mark.parametrize("header", ODD_HEADERS, ids=repr)
@pytest.mark.parametrize("path", ["/api/v1/agents/", "/api/v1/jobs/", "/api/v1/workers/", "/api/v1/schema/", "/status"])
def test_an_odd_authorization_header_gets_401(header: str, path: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(path)
    assert response.status_code == 401, response.content
    assert b"detail" in response.content  # the schema route renders it as YAML, the rest as JSON


@pytest.mark.parametrize("header", ODD_HEADERS, ids=repr)
def test_an_odd_authorization_header_on_a_write_gets_401(header: str, active_agent: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.post("/api/v1/jobs/", {"agent": active_agent.agent_id, "room": "r"}, format="json")
    assert response.status_code == 401, response.content
