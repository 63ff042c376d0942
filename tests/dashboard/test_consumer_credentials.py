"""Open sockets re-check their credential and close with 4401 once it is no longer valid."""
from __future__ import annotations

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore

from controlplane.scopes import READ
from sessions.models import AgentSession
from tests.dashboard.helpers import in_thread
from tests.dashboard.test_consumers import communicator, login_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _quick_recheck(settings: Any) -> None:
    settings.WS_AUTH_RECHECK_SECONDS = 0.2


async def open_socket(path: str, **kwargs: Any) -> WebsocketCommunicator:
    comm = communicator(path, **kwargs)
    connected, _ = await comm.connect()
    assert connected
    if path.startswith("/ws/sessions/"):
        assert (await comm.receive_json_from(timeout=5))["type"] == "replay_done"
    assert await comm.receive_nothing(timeout=0.7)  # a valid credential survives several re-checks
    return comm


async def close_code(comm: WebsocketCommunicator) -> int:
    message = await comm.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    await comm.disconnect()  # as daphne does once the client has the close: the consumer cleans up
    return message["code"]


def paths(session: AgentSession) -> list[str]:
    return [f"/ws/sessions/{session.session_id}/", "/ws/fleet/"]


@pytest.mark.parametrize("which", [0, 1], ids=["session", "fleet"])
async def test_a_revoked_key_is_closed_with_4401(live_session: AgentSession, api_key_factory: Any, which: int) -> None:
    key, raw = await in_thread(api_key_factory, READ)
    comm = await open_socket(f"{paths(live_session)[which]}?token={raw}")
    await in_thread(key.revoke)
    assert await close_code(comm) == 4401


@pytest.mark.parametrize("which", [0, 1], ids=["session", "fleet"])
async def test_a_logged_out_user_is_closed_with_4401(live_session: AgentSession, operator: Any, which: int) -> None:
    cookie = await in_thread(login_cookie, operator)
    comm = await open_socket(paths(live_session)[which], cookie=cookie)
    session_key = cookie.split("=", 1)[1]
    await in_thread(lambda: SessionStore(session_key=session_key).delete())  # what logout() does
    assert await close_code(comm) == 4401


async def test_a_deactivated_user_is_closed_with_4401(live_session: AgentSession, operator: Any) -> None:
    cookie = await in_thread(login_cookie, operator)
    comm = await open_socket("/ws/fleet/", cookie=cookie)
    await in_thread(lambda: type(operator).objects.filter(pk=operator.pk).update(is_active=False))
    assert await close_code(comm) == 4401


async def test_a_changed_password_ends_the_socket_like_other_sessions(live_session: AgentSession, operator: Any) -> None:
    cookie = await in_thread(login_cookie, operator)
    comm = await open_socket(f"/ws/sessions/{live_session.session_id}/", cookie=cookie)

    def change_password() -> None:
        operator.set_password("a-new-password-456")
        operator.save()

    await in_thread(change_password)
    assert await close_code(comm) == 4401


async def test_a_key_that_loses_its_read_scope_is_closed_with_4403(live_session: AgentSession, api_key_factory: Any) -> None:
    key, raw = await in_thread(api_key_factory, READ)
    comm = await open_socket(f"/ws/fleet/?token={raw}")
    await in_thread(lambda: type(key).objects.filter(pk=key.pk).update(scopes=["jobs:write"]))
    assert await close_code(comm) == 4403
