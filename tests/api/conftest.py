"""Personas for the REST API tests: clients holding API keys with given scopes."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from rest_framework.test import APIClient

from controlplane.models import ApiKey
from controlplane.scopes import READ
from sessions.control import control_group


@pytest.fixture
def client_with_scopes(api_key_factory: Callable[..., tuple[ApiKey, str]]) -> Callable[..., APIClient]:
    """An APIClient sending `Authorization: Bearer <key>` for a new key with these scopes."""

    def make(*scopes: str, name: str = "test-key") -> APIClient:
        key, raw = api_key_factory(*scopes, name=name)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        client.api_key = key  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def api_client(client_with_scopes: Callable[..., APIClient]) -> APIClient:
    """A client whose key holds every scope (`admin`)."""
    return client_with_scopes("admin", name="admin-key")


@pytest.fixture
def reader(client_with_scopes: Callable[..., APIClient]) -> APIClient:
    return client_with_scopes(READ, name="read-only")


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


def field_errors(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, (response.status_code, response.content)
    body = response.json()
    assert isinstance(body, dict), body
    return body


@pytest.fixture
def job(active_agent: Any) -> Any:
    from workers.dispatch import job_dispatch

    return job_dispatch(agent_id=active_agent.agent_id, room="room-1", metadata={"caller": "+15550100"})


@pytest.fixture
def live_session(job: Any) -> Any:
    """A session in `active` state, as a worker would have recorded it."""
    from sessions.models import AgentSession, SessionStatus

    return AgentSession.objects.create(
        job=job, agent=job.agent, agent_version=job.agent_version, room_id=job.room_name, status=SessionStatus.ACTIVE
    )


@pytest.fixture
def worker(db: Any) -> Any:
    from django.utils import timezone

    from workers.models import Worker

    return Worker.objects.create(
        worker_id="celery@node-1", hostname="node-1", queue="celery@node-1.dq2", capacity=10, last_heartbeat_at=timezone.now()
    )


class ControlListener:
    """Stands where the hosting worker listens: a channel in the session's control group."""

    def __init__(self, session_id: str) -> None:
        self.layer = get_channel_layer()
        self.group = control_group(session_id)
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(self.group, self.channel)

    def receive(self) -> dict[str, Any]:
        async def get() -> dict[str, Any]:
            return await asyncio.wait_for(self.layer.receive(self.channel), timeout=5)

        return async_to_sync(get)()

    def close(self) -> None:
        async_to_sync(self.layer.group_discard)(self.group, self.channel)


@pytest.fixture
def listener(live_session: Any) -> Any:
    listener = ControlListener(live_session.session_id)
    yield listener
    listener.close()
