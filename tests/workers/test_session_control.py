"""Operator commands: validation, and delivery across processes through the channel layer."""
from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import pytest

from controlplane.errors import Conflict, DomainError, NotFound
from sessions.control import command_listener, send_session_command
from sessions.job_context import JobContext
from sessions.models import AgentSession, SessionStatus
from tests.helpers import wait_for_async


def test_an_unknown_session_is_not_found(db: Any) -> None:
    with pytest.raises(NotFound):
        send_session_command("ses_missing", "say", actor="ops", text="hi")


def test_a_session_that_is_not_live_is_a_conflict(live_session: AgentSession) -> None:
    AgentSession.objects.filter(pk=live_session.pk).update(status=SessionStatus.DISCONNECTED)
    with pytest.raises(Conflict):
        send_session_command(live_session.pk, "interrupt", actor="ops")


@pytest.mark.parametrize(("command", "text", "field"), [("dance", None, "command"), ("say", None, "text"), ("message", "  ", "text"),
                                                         ("say", "x" * 10_001, "text")])
def test_bad_commands_name_the_field(live_session: AgentSession, command: str, text: str | None, field: str) -> None:
    with pytest.raises(DomainError) as exc:
        send_session_command(live_session.pk, command, actor="ops", text=text)
    assert exc.value.field == field


@pytest.fixture
def redis_channel_layer(settings: Any) -> Any:
    """The production channel layer, whatever mode the suite runs in."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/1"]},
        }
    }
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.mark.integration
def test_a_command_crosses_to_a_listener_on_another_event_loop(live_session: AgentSession, redis_channel_layer: Any) -> None:
    """The worker's listener runs on its own loop and thread, as in a worker process."""
    received: list[tuple[str, Any]] = []
    done = threading.Event()
    subscribed = threading.Event()
    sent = threading.Event()  # the sender has both confirmations
    ctx = JobContext(job_id="job_x", session_id=live_session.pk, agent_id="support", agent_version=1, agent_config={}, room={"name": "r"})
    ctx.on_command("say", lambda text=None, actor=None: received.append(("say", text)))

    def worker_loop() -> None:
        async def main() -> None:
            ctx.bind_loop(asyncio.get_running_loop())
            from channels.layers import get_channel_layer

            listener = ctx.create_task(command_listener(ctx))
            layer = get_channel_layer()
            group = f"session-control-{live_session.pk}"
            await wait_for_async(lambda: _is_member(layer, group), what="the listener in its group")
            subscribed.set()
            await ctx.wait_for_shutdown()
            received.append(("end", ctx.shutdown_reason))
            listener.cancel()
            await ctx.aclose()
            # a worker's loop outlives its sessions; asyncio.run would cancel the `end`'s
            # confirmation if it were still on its way to Redis when this coroutine returns
            await asyncio.to_thread(sent.wait, 10)
            done.set()

        asyncio.run(main())

    thread = threading.Thread(target=worker_loop, daemon=True)
    thread.start()
    assert subscribed.wait(10)
    send_session_command(live_session.pk, "say", actor="ops", text="hold on")
    send_session_command(live_session.pk, "end", actor="ops")
    sent.set()
    assert done.wait(10)
    assert received == [("say", "hold on"), ("end", "ended by ops")]


async def _is_member(layer: Any, group: str) -> bool:
    connection = layer.connection(layer.consistent_hash(group))
    return bool(await connection.zcard(layer._group_key(group)))


@pytest.mark.integration
def test_a_command_no_worker_confirms_is_a_503_not_a_202(live_session: AgentSession, redis_channel_layer: Any,
                                                          settings: Any) -> None:
    from controlplane.errors import Unavailable

    settings.SESSION_COMMAND_ACK_TIMEOUT_SECONDS = 0.5
    with pytest.raises(Unavailable) as exc:  # nobody listens on the session's group
        send_session_command(live_session.pk, "say", actor="ops", text="anyone?")
    assert "did not confirm" in exc.value.message


@pytest.mark.integration
def test_the_api_answers_503_with_the_reason_when_the_channel_layer_is_down(
        live_session: AgentSession, settings: Any, api_key_factory: Any) -> None:
    import socket

    from channels.layers import channel_layers
    from rest_framework.test import APIClient

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [f"redis://127.0.0.1:{port}/0"]}}}
    channel_layers.backends.clear()
    try:
        _, raw = api_key_factory("sessions:control")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        response = client.post(f"/api/v1/sessions/{live_session.pk}/messages", {"text": "hello"}, format="json")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 503, response.content
    assert response.json()["error"] == "unavailable" and "channel layer is unavailable" in response.json()["detail"]


def test_a_command_to_a_session_whose_worker_is_offline_is_a_503(live_session: AgentSession, online_worker: Any,
                                                                  active_agent: Any) -> None:
    from controlplane.errors import Unavailable
    from workers.models import Job, Worker, WorkerStatus

    worker = online_worker("gone@host")
    Worker.objects.filter(pk=worker.pk).update(status=WorkerStatus.OFFLINE)
    job = Job.objects.create(agent=active_agent, room_name="r", status="running", assigned_worker=worker)
    AgentSession.objects.filter(pk=live_session.pk).update(job=job)
    with pytest.raises(Unavailable) as exc:
        send_session_command(live_session.pk, "interrupt", actor="ops")
    assert "gone@host" in exc.value.message and "offline" in exc.value.message


@pytest.mark.integration
def test_an_idle_listener_logs_no_warnings(live_session: AgentSession, redis_channel_layer: Any,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """channels_redis's blocking receive times out every few seconds when nobody sends: normal."""
    ctx = JobContext(job_id="job_idle", session_id=live_session.pk, agent_id="support", agent_version=1, agent_config={},
                     room={"name": "r"})

    async def main() -> None:
        ctx.bind_loop(asyncio.get_running_loop())
        listener = asyncio.get_running_loop().create_task(command_listener(ctx))
        await asyncio.sleep(7)
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)

    with caplog.at_level("INFO", logger="sessions.job"):
        asyncio.run(main())
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
