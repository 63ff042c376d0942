"""Personas for the REST API tests: clients holding API keys with given scopes."""
from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any

import pytest
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
    """Stands where the hosting worker listens: a channel in the session's control group, on
    a loop of its own, confirming each command on its reply channel as the worker does."""

    def __init__(self, session_id: str) -> None:
        self.group = control_group(session_id)
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._joined = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), name="control-listener", daemon=True)
        self._thread.start()
        assert self._joined.wait(10), "the control listener did not join its group"

    async def _listen(self) -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(self.group, channel)
        self._joined.set()
        try:
            while not self._stop.is_set():
                try:
                    message = await asyncio.wait_for(layer.receive(channel), timeout=0.2)
                except asyncio.TimeoutError:
                    continue
                self.messages.put(message)
                if message.get("reply_to"):
                    await layer.send(message["reply_to"], {"type": "session.command.ack", "ok": True})
        finally:
            await layer.group_discard(self.group, channel)

    def receive(self) -> dict[str, Any]:
        return self.messages.get(timeout=5)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def listener(live_session: Any) -> Any:
    listener = ControlListener(live_session.session_id)
    yield listener
    listener.close()
