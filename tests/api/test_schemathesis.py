"""Requests generated from the OpenAPI schema never get a 5xx.

The schema is served by the app itself (it needs a key with `read`); schemathesis calls
the Django WSGI application in-process, so requests share the test's database. Each
operation runs twice per example: with the generated path parameters (mostly unknown
ids), and with the ids of real rows, so bodies reach the services too.
"""
from __future__ import annotations

from typing import Any

import json

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from controlplane.models import ApiKey

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 12
wsgi_app = get_wsgi_application()


@pytest.fixture(autouse=True)
def keep_the_test_connection() -> Any:
    """As Django's test client does: the handler must not close the test's DB connection
    (it runs inside the test's transaction) at the start and end of each request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def auth_headers(db: Any) -> dict[str, str]:
    _, raw = ApiKey.generate(name="schemathesis", scopes=["admin"])
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def real_ids(active_agent: Any, job: Any, live_session: Any, worker: Any, registered_tool: Any,
             listener: Any) -> dict[str, str]:
    """`listener` confirms the session commands, as the hosting worker would."""
    return {
        "agent_id": active_agent.agent_id, "job_id": job.job_id, "session_id": live_session.session_id,
        "worker_id": worker.worker_id, "name": registered_tool.name,
    }


def _openapi_document() -> dict[str, Any]:
    # The document /api/v1/schema/ serves (checked below); built here because loading it
    # over HTTP needs an API key, hence the database, which collection time does not have.
    # (schemathesis.pytest.from_fixture would defer that, but fails under pytest 9.)
    return SchemaGenerator().get_schema(request=None, public=True)


schema = schemathesis.openapi.from_dict(json.loads(json.dumps(_openapi_document(), cls=DjangoJSONEncoder)))
schema.app = wsgi_app


def test_the_app_serves_the_schema_under_test(api_client: Any) -> None:
    served = api_client.get("/api/v1/schema/?format=json")
    assert served.status_code == 200
    assert json.loads(served.content)["paths"].keys() == schema.raw_schema["paths"].keys()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_generated_request_gets_a_server_error(case: Any, auth_headers: dict[str, str], real_ids: dict[str, str]) -> None:
    case.call_and_validate(headers=auth_headers, checks=[not_a_server_error])
    if case.path_parameters:
        case.path_parameters = {name: real_ids.get(name, value) for name, value in case.path_parameters.items()}
        case.call_and_validate(headers=auth_headers, checks=[not_a_server_error])


def test_the_docs_page_renders_for_a_reader(reader: Any) -> None:
    response = reader.get("/api/v1/docs/")
    assert response.status_code == 200 and b"swagger" in response.content.lower()
