"""The API request's hot paths read neither `django.db.connection` (a proxy: each attribute
read costs a thread-local lookup) in their loops, nor `request.headers` (whose first use turns
every META entry into a header name): what they need is read once, from the wrapper or META."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone
from django.utils.connection import ConnectionProxy
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from controlplane.api_auth import ApiKeyAuthentication
from controlplane.models import ApiKey
from controlplane.prepared_statements import prepared_cursor
from controlplane.sql_rows import insert_row, model_from_json_row, model_from_row, select_columns
from workers.models import Job
from workers.serializers import IdempotencyKeySerializer

pytestmark = pytest.mark.django_db


class ProxyReads:
    """The attributes read through `django.db.connection` while it is on."""

    def __init__(self) -> None:
        self.reads: list[str] = []
        self.on = False

    def __call__(self) -> Any:
        return self

    def __enter__(self) -> None:
        self.on = True

    def __exit__(self, *exc: object) -> None:
        self.on = False


@pytest.fixture
def proxy_reads() -> Iterator[ProxyReads]:
    watch = ProxyReads()
    original = ConnectionProxy.__getattr__

    def counted(self: Any, item: str) -> Any:
        if watch.on:
            watch.reads.append(item)
        return original(self, item)

    with mock.patch.object(ConnectionProxy, "__getattr__", counted):
        yield watch


def test_a_prepared_cursor_and_the_row_helpers_read_the_connection_proxy_not_at_all(proxy_reads: ProxyReads) -> None:
    key, _ = ApiKey.generate(name="ci", scopes=["read"])
    job = Job(job_type="tool_execution", room_name="tool", room={}, transport="local", metadata={}, created_at=timezone.now())
    sql = f"SELECT {select_columns(ApiKey, 'k')} FROM controlplane_apikey k WHERE k.id = %s"
    # once unwatched: each helper's SQL and converters are worked out (and cached) on first use
    with prepared_cursor() as cursor:
        cursor.execute(sql, [key.pk])
        model_from_row(ApiKey, cursor.fetchone())
    insert_row(Job(job_type="tool_execution", room_name="tool", room={}, transport="local", metadata={},
                   created_at=timezone.now()))
    with proxy_reads:
        with prepared_cursor() as cursor:
            cursor.execute(sql, [key.pk])
            row = cursor.fetchone()
        read = model_from_row(ApiKey, row)
        insert_row(job)
        from_json = model_from_json_row(ApiKey, {"id": key.pk, "name": "ci", "scopes": ["read"]})
    assert proxy_reads.reads == []
    assert read == key and from_json.pk == key.pk and from_json._state.db == "default"
    assert Job.objects.filter(pk=job.pk).exists() and job._state.db == "default" and not job._state.adding


def test_the_key_and_the_idempotency_key_are_read_without_building_request_headers() -> None:
    key, raw = ApiKey.generate(name="ci", scopes=["read"])
    django_request = APIRequestFactory().post("/api/v1/jobs/", {}, format="json", HTTP_AUTHORIZATION=f"Bearer {raw}",
                                              HTTP_IDEMPOTENCY_KEY="k-1")
    request = Request(django_request)

    user, found = ApiKeyAuthentication().authenticate(request)
    assert found == key and user.username == "apikey:ci"
    assert IdempotencyKeySerializer.from_request(request) == "k-1"
    assert "headers" not in django_request.__dict__  # the cached_property was never asked
    assert request.headers["Idempotency-Key"] == "k-1"  # the value it would have given
