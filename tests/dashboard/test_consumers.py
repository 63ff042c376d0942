"""The session and fleet WebSocket consumers, through the real ASGI application."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

from controlplane.fleet_events import publish_fleet_event
from controlplane.scopes import JOBS_WRITE, READ
from server.asgi import application
from sessions.event_sink import DjangoEventSink, abroadcast_session_events
from sessions.models import AgentSession
from runtime import events as ev
from sessions.services import session_events_append
from tests.dashboard.helpers import in_thread

pytestmark = pytest.mark.django_db(transaction=True)


def login_cookie(user: Any) -> str:
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def communicator(path: str, cookie: str | None = None, headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    all_headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")] + (headers or [])
    if cookie:
        all_headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, path, headers=all_headers)


def append(session_id: str, *texts: str) -> list[Any]:
    now = datetime.now(timezone.utc)
    return session_events_append(session_id=session_id, events=[("text_received", now, {"text": t}) for t in texts])


async def collect_until(comm: WebsocketCommunicator, seq: int) -> list[dict[str, Any]]:
    """Envelopes received until the one with `seq` (fails on timeout)."""
    got: list[dict[str, Any]] = []
    while not got or got[-1]["seq"] < seq:
        frame = await comm.receive_json_from(timeout=5)
        if frame["type"] == "events":
            got.extend(frame["events"])
    return got


async def closed_with(comm: WebsocketCommunicator) -> int:
    connected, _ = await comm.connect()
    assert connected  # accepted first, so the client sees the code
    message = await comm.receive_output(timeout=5)
    assert message["type"] == "websocket.close"
    return message["code"]


async def test_it_replays_after_seq_then_streams_live_without_gap_or_duplicate(live_session: AgentSession, operator: Any) -> None:
    sid = live_session.session_id
    await in_thread(append, sid, *[f"stored {i}" for i in range(1, 11)])
    cookie = await in_thread(login_cookie, operator)
    comm = communicator(f"/ws/sessions/{sid}/?after_seq=4", cookie)
    connected, _ = await comm.connect()
    assert connected

    replayed = await collect_until(comm, 10)
    assert await comm.receive_json_from(timeout=5) == {"type": "replay_done", "last_seq": 10}

    # Live: one broadcast repeats seqs the replay already sent, as a racing writer would.
    rows = await in_thread(append, sid, "live 11", "live 12")
    stale = await in_thread(lambda: list(live_session.events.filter(seq__in=[9, 10])))
    await abroadcast_session_events(stale + rows)
    live = await collect_until(comm, 12)

    seqs = [e["seq"] for e in replayed + live]
    assert seqs == list(range(5, 13))
    assert live[-1]["data"] == {"text": "live 12"}
    await comm.disconnect()


async def test_live_events_and_client_frames_are_handled_without_a_database_thread_hop(
        live_session: AgentSession, operator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # channels runs close_old_connections on its one sync thread before every handler; the
    # live path skips it (its handlers reach the database only through database_sync_to_async)
    import channels.consumer

    hops: list[str] = []
    real = channels.consumer.aclose_old_connections

    async def counted() -> None:
        hops.append("hop")
        await real()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    sid = live_session.session_id
    cookie = await in_thread(login_cookie, operator)
    comm = communicator(f"/ws/sessions/{sid}/", cookie)
    await comm.connect()
    assert await comm.receive_json_from(timeout=5) == {"type": "replay_done", "last_seq": 0}
    hops_at_connect = len(hops)
    for i in range(1, 4):
        await abroadcast_session_events(await in_thread(append, sid, f"live {i}"))
    got = await collect_until(comm, 3)
    assert [e["seq"] for e in got] == [1, 2, 3]
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from(timeout=5) == {"type": "pong", "last_seq": 3}
    assert hops_at_connect == 1 and len(hops) == 1  # the connect's, none for 3 broadcasts and a ping
    await comm.disconnect()


async def test_events_stored_while_connecting_are_sent_once(live_session: AgentSession, operator: Any) -> None:
    sid = live_session.session_id
    cookie = await in_thread(login_cookie, operator)
    comm = communicator(f"/ws/sessions/{sid}/", cookie)
    await comm.connect()
    assert await comm.receive_json_from(timeout=5) == {"type": "replay_done", "last_seq": 0}

    # A sink writing from its own thread while the client is connected.
    def run_sink() -> None:
        sink = DjangoEventSink(sid)
        for i in range(300):
            sink.emit(ev.TextReceived(text=f"t{i}"))
        assert sink.close()

    await in_thread(run_sink)
    got = await collect_until(comm, 300)
    assert [e["seq"] for e in got] == list(range(1, 301))
    await comm.disconnect()


async def test_a_lost_broadcast_is_filled_in_from_the_database(live_session: AgentSession, operator: Any) -> None:
    sid = live_session.session_id
    cookie = await in_thread(login_cookie, operator)
    comm = communicator(f"/ws/sessions/{sid}/", cookie)
    await comm.connect()
    await comm.receive_json_from(timeout=5)

    await in_thread(append, sid, "never broadcast 1", "never broadcast 2")
    rows = await in_thread(append, sid, "broadcast 3")
    await abroadcast_session_events(rows)
    got = await collect_until(comm, 3)
    assert [e["seq"] for e in got] == [1, 2, 3]
    await comm.disconnect()


async def test_an_api_key_with_read_scope_may_watch(live_session: AgentSession, api_key_factory: Any) -> None:
    _, raw = await in_thread(api_key_factory, READ)
    comm = communicator(f"/ws/sessions/{live_session.session_id}/?token={raw}")
    await comm.connect()
    assert await comm.receive_json_from(timeout=5) == {"type": "replay_done", "last_seq": 0}
    await comm.disconnect()

    comm = communicator(f"/ws/sessions/{live_session.session_id}/", headers=[(b"authorization", f"Bearer {raw}".encode())])
    await comm.connect()
    assert await comm.receive_json_from(timeout=5) == {"type": "replay_done", "last_seq": 0}
    await comm.disconnect()


async def test_anonymous_clients_are_refused_with_4401(live_session: AgentSession) -> None:
    assert await closed_with(communicator(f"/ws/sessions/{live_session.session_id}/")) == 4401
    assert await closed_with(communicator("/ws/fleet/")) == 4401


async def test_an_unknown_or_revoked_key_is_refused_with_4401(live_session: AgentSession, api_key_factory: Any) -> None:
    key, raw = await in_thread(api_key_factory, READ)
    await in_thread(key.revoke)
    assert await closed_with(communicator(f"/ws/sessions/{live_session.session_id}/?token={raw}")) == 4401
    assert await closed_with(communicator(f"/ws/sessions/{live_session.session_id}/?token=cpk_nope_nope")) == 4401


async def test_a_key_without_read_scope_is_forbidden_with_4403(live_session: AgentSession, api_key_factory: Any) -> None:
    _, raw = await in_thread(api_key_factory, JOBS_WRITE)
    assert await closed_with(communicator(f"/ws/sessions/{live_session.session_id}/?token={raw}")) == 4403


async def test_a_user_without_session_permission_is_forbidden_with_4403(live_session: AgentSession, viewer: Any) -> None:
    cookie = await in_thread(login_cookie, viewer)
    assert await closed_with(communicator(f"/ws/sessions/{live_session.session_id}/", cookie)) == 4403
    assert await closed_with(communicator("/ws/fleet/", cookie)) == 4403


async def test_an_unknown_session_is_closed_with_4404(operator: Any) -> None:
    cookie = await in_thread(login_cookie, operator)
    assert await closed_with(communicator("/ws/sessions/ses_doesnotexist/", cookie)) == 4404


async def test_a_bad_after_seq_is_closed_with_4400(live_session: AgentSession, operator: Any) -> None:
    cookie = await in_thread(login_cookie, operator)
    assert await closed_with(communicator(f"/ws/sessions/{live_session.session_id}/?after_seq=x", cookie)) == 4400


async def test_fleet_stream_forwards_status_changes(operator: Any) -> None:
    cookie = await in_thread(login_cookie, operator)
    comm = communicator("/ws/fleet/", cookie)
    connected, _ = await comm.connect()
    assert connected
    publish_fleet_event("job", {"job_id": "job_1", "status": "assigned"})  # queued: it does not wait
    frame = await comm.receive_json_from(timeout=5)
    assert frame["type"] == "fleet" and frame["kind"] == "job"
    assert frame["data"] == {"job_id": "job_1", "status": "assigned"}
    await comm.disconnect()
