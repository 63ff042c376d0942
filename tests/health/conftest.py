"""Personas for the health/metrics/status tests."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from controlplane.models import ApiKey


@pytest.fixture
def client_with_scopes(api_key_factory: Callable[..., tuple[ApiKey, str]]) -> Callable[..., APIClient]:
    def make(*scopes: str) -> APIClient:
        _, raw = api_key_factory(*scopes)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client

    return make


@pytest.fixture
def api_client(client_with_scopes: Callable[..., APIClient]) -> APIClient:
    return client_with_scopes("read")


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()
