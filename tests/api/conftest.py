"""Personas for the REST API tests: a dispatched job, its live session, the listener standing
in for its worker (the API clients are the suite's, in tests/conftest.py)."""
from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

import pytest
from channels.layers import get_channel_layer

from sessions.control import worker_control_group
from sessions.models import AgentSession
from workers.dispatch import job_dispatch


def field_errors(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, (response.status_code, response.content)
    body = response.json()
    assert isinstance(body, dict), body
    return body


@pytest.fixture
def job(active_agent: Any) -> Any:
    return job_dispatch(agent_id=active_agent.agent_id, room="room-1", metadata={"caller": "+15550100"})


@pytest.fixture
def live_session(live_session: AgentSession, job: Any) -> AgentSession:
    """The suite's live session (same agent, room-1), here hosting `job` as its worker records it."""
    live_session.job = job
    live_session.save(update_fields=["job"])
    return live_session


@pytest.fixture
def ids(active_agent: Any, job: Any, live_session: AgentSession, worker: Any, listener: Any) -> dict[str, str]:
    """The ids an API path names. `listener` confirms the session commands, as the hosting worker would."""
    return {"agent": active_agent.agent_id, "job": job.job_id, "session": live_session.session_id, "worker": worker.worker_id}


class ControlListener:
    """Stands where the hosting worker listens: a channel in the worker's control group, on
    a loop of its own, confirming each command on its reply channel as the worker does."""

    def __init__(self, worker_id: str) -> None:
        self.group = worker_control_group(worker_id)
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
def listener(live_session: Any, job: Any, worker: Any) -> Any:
    """The session's job hosted by `worker`, whose listener this stands for."""
    type(job).objects.filter(pk=job.pk).update(assigned_worker=worker)
    listener = ControlListener(worker.worker_id)
    yield listener
    listener.close()
