"""Operator commands: validation, and delivery across processes through the channel layer."""
from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import pytest

from controlplane.errors import Conflict, DomainError, NotFound
from sessions.control import send_session_command, worker_control_group
from sessions.control_listener import control_close, control_open, worker_listener
from sessions.job_context import JobContext
from sessions.models import AgentSession, SessionStatus


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


@pytest.fixture
def hosted_session(live_session: AgentSession, online_worker: Any, active_agent: Any) -> AgentSession:
    """The live session as a worker hosts it: its job assigned to the online worker `w1@host`."""
    from workers.models import Job

    worker = online_worker("w1@host")
    job = Job.objects.create(agent=active_agent, room_name="r", status="running", assigned_worker=worker)
    AgentSession.objects.filter(pk=live_session.pk).update(job=job)
    live_session.refresh_from_db()
    return live_session


def _context(session_id: str, worker_id: str = "w1@host") -> JobContext:
    return JobContext(job_id="job_x", session_id=session_id, agent_id="support", agent_version=1, agent_config={},
                      room={"name": "r"}, worker_id=worker_id)


class WorkerLoop:
    """A worker process's session loop on a thread of its own: sessions open their control
    route on it, as `sessions.hosting.host_session` does."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def open(self, ctx: JobContext) -> None:
        async def opened() -> None:
            ctx.bind_loop(asyncio.get_running_loop())
            control_open(ctx)
            listener = worker_listener(ctx.worker_id)
            assert listener is not None
            await asyncio.wait_for(listener.joined.wait(), 10)
        self.run(opened())

    def close(self, ctx: JobContext) -> None:
        async def closed() -> None:
            control_close(ctx)
        self.run(closed())

    def stop(self) -> None:
        async def cancel_listeners() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.run(cancel_listeners())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def worker_loop() -> Any:
    loop = WorkerLoop()
    yield loop
    loop.stop()


@pytest.mark.integration
def test_a_command_crosses_to_its_session_on_the_workers_loop(hosted_session: AgentSession, redis_channel_layer: Any,
                                                               worker_loop: WorkerLoop) -> None:
    """The worker's listener runs on its own loop and thread, as in a worker process."""
    received: list[tuple[str, Any]] = []
    ctx = _context(hosted_session.pk)
    ctx.on_command("say", lambda text=None, actor=None: received.append(("say", text)))
    worker_loop.open(ctx)
    send_session_command(hosted_session.pk, "say", actor="ops", text="hold on")
    send_session_command(hosted_session.pk, "end", actor="ops")
    assert received == [("say", "hold on")]
    assert ctx.shutdown_reason == "ended by ops"


@pytest.mark.integration
def test_one_listener_serves_every_session_of_a_worker_each_its_own_commands(
        hosted_session: AgentSession, active_agent: Any, redis_channel_layer: Any, worker_loop: WorkerLoop) -> None:
    """Sessions of one worker share its group membership (one channel): a session's start and end
    cost no channel-layer round trip, and each command still reaches only the session it names."""
    from channels.layers import get_channel_layer

    from workers.models import Job

    other_job = Job.objects.create(agent=active_agent, room_name="r2", status="running",
                                   assigned_worker_id="w1@host")
    other = AgentSession.objects.create(agent=active_agent, agent_version=1, room_id="r2", status=SessionStatus.ACTIVE,
                                        job=other_job)
    heard: list[tuple[str, Any]] = []
    first, second = _context(hosted_session.pk), _context(other.pk)
    first.on_command("say", lambda text=None, actor=None: heard.append(("first", text)))
    second.on_command("say", lambda text=None, actor=None: heard.append(("second", text)))
    worker_loop.open(first)
    worker_loop.open(second)
    send_session_command(other.pk, "say", actor="ops", text="to the second")
    send_session_command(hosted_session.pk, "say", actor="ops", text="to the first")
    assert heard == [("second", "to the second"), ("first", "to the first")]
    layer = get_channel_layer()
    members = worker_loop.run(_members(layer, worker_control_group("w1@host")))
    assert len(members) == 1


@pytest.mark.integration
def test_a_command_for_a_session_that_left_its_worker_is_not_confirmed(
        hosted_session: AgentSession, redis_channel_layer: Any, worker_loop: WorkerLoop, settings: Any) -> None:
    from controlplane.errors import Unavailable

    settings.SESSION_COMMAND_ACK_TIMEOUT_SECONDS = 0.5
    heard: list[Any] = []
    ctx = _context(hosted_session.pk)
    ctx.on_command("say", lambda text=None, actor=None: heard.append(text))
    worker_loop.open(ctx)
    worker_loop.close(ctx)  # the session ended; its worker's listener stays for the others
    with pytest.raises(Unavailable) as exc:
        send_session_command(hosted_session.pk, "say", actor="ops", text="still there?")
    assert "did not confirm" in exc.value.message and heard == []


def test_a_session_whose_job_has_no_worker_is_unavailable_at_once(live_session: AgentSession,
                                                                   redis_channel_layer: Any) -> None:
    from controlplane.errors import Unavailable

    with pytest.raises(Unavailable) as exc:  # nobody could be hosting it: no wait for a confirmation
        send_session_command(live_session.pk, "say", actor="ops", text="anyone?")
    assert "not hosted by any worker" in exc.value.message


@pytest.mark.parametrize("worker_id", ["celery@node-1", "a" * 255, "bench0-12@bench", "w\u00e9@h\u00f6st"])
def test_a_worker_control_group_is_a_valid_group_name_for_any_worker_id(worker_id: str) -> None:
    from channels.layers import BaseChannelLayer

    assert BaseChannelLayer().require_valid_group_name(worker_control_group(worker_id))


def test_two_worker_ids_never_share_a_control_group() -> None:
    assert worker_control_group("a@b") != worker_control_group("a_b")
    assert worker_control_group("x" * 60 + "1") != worker_control_group("x" * 60 + "2")


async def _members(layer: Any, group: str) -> list[bytes]:
    connection = layer.connection(layer.consistent_hash(group))
    return list(await connection.zrange(layer._group_key(group), 0, -1))


@pytest.mark.integration
def test_a_command_no_worker_confirms_is_a_503_not_a_202(hosted_session: AgentSession, redis_channel_layer: Any,
                                                          settings: Any) -> None:
    from controlplane.errors import Unavailable

    settings.SESSION_COMMAND_ACK_TIMEOUT_SECONDS = 0.5
    with pytest.raises(Unavailable) as exc:  # nobody listens on its worker's group
        send_session_command(hosted_session.pk, "say", actor="ops", text="anyone?")
    assert "did not confirm" in exc.value.message


@pytest.mark.integration
def test_the_api_answers_503_with_the_reason_when_the_channel_layer_is_down(
        hosted_session: AgentSession, settings: Any, api_key_factory: Any) -> None:
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
        response = client.post(f"/api/v1/sessions/{hosted_session.pk}/messages", {"text": "hello"}, format="json")
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
    ctx = _context(live_session.pk, worker_id="idle@host")

    async def main() -> None:
        ctx.bind_loop(asyncio.get_running_loop())
        control_open(ctx)
        await asyncio.sleep(7)
        control_close(ctx)
        listener = worker_listener("idle@host")
        assert listener is not None and listener.task is not None
        listener.task.cancel()
        await asyncio.gather(listener.task, return_exceptions=True)

    with caplog.at_level("INFO"):
        asyncio.run(main())
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
