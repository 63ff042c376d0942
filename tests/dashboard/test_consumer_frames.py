"""Client frames on the WebSocket streams: bad ones get a clear error and close code, and
unknown paths a clean refusal, never 1011 "Exception inside application"."""
from __future__ import annotations

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from sessions.models import AgentSession
from tests.dashboard.helpers import in_thread
from tests.dashboard.test_consumers import closed_with, communicator, login_cookie

pytestmark = pytest.mark.django_db(transaction=True)


async def watching(session: AgentSession, operator: Any) -> WebsocketCommunicator:
    comm = communicator(f"/ws/sessions/{session.session_id}/", await in_thread(login_cookie, operator))
    connected, _ = await comm.connect()
    assert connected
    assert (await comm.receive_json_from(timeout=5))["type"] == "replay_done"
    return comm


async def error_then_close(comm: WebsocketCommunicator) -> tuple[str, int]:
    frame = await comm.receive_json_from(timeout=5)
    assert frame["type"] == "error", frame
    message = await comm.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    await comm.disconnect()  # as daphne does once the client has the close: the consumer cleans up
    return frame["error"], message["code"]


@pytest.mark.parametrize("path", ["/ws/nope/", "/ws/", "/ws/sessions/", "/ws/sessions/a/b/", "/anything"])
async def test_an_unknown_path_is_refused_with_4404(path: str) -> None:
    assert await closed_with(communicator(path)) == 4404


@pytest.mark.parametrize("text", ["not json", "{", "\xa0", "[1,"])
async def test_a_frame_that_is_not_json_gets_an_error_and_4400(live_session: AgentSession, operator: Any, text: str) -> None:
    comm = await watching(live_session, operator)
    await comm.send_to(text_data=text)
    error, code = await error_then_close(comm)
    assert "JSON" in error and code == 4400


async def test_a_binary_frame_gets_an_error_and_4400(live_session: AgentSession, operator: Any) -> None:
    comm = await watching(live_session, operator)
    await comm.send_to(bytes_data=b"\x00\x01")
    error, code = await error_then_close(comm)
    assert "binary" in error and code == 4400


async def test_a_frame_over_the_limit_gets_an_error_and_1009(live_session: AgentSession, operator: Any, settings: Any) -> None:
    settings.WS_MAX_MESSAGE_BYTES = 1024
    comm = await watching(live_session, operator)
    await comm.send_json_to({"type": "ping", "pad": "x" * 2000})
    error, code = await error_then_close(comm)
    assert "1024 bytes" in error and code == 1009


async def test_a_ping_within_the_limit_still_gets_its_pong(live_session: AgentSession, operator: Any, settings: Any) -> None:
    settings.WS_MAX_MESSAGE_BYTES = 1024
    comm = await watching(live_session, operator)
    await comm.send_json_to({"type": "ping", "pad": "x" * 900})
    assert await comm.receive_json_from(timeout=5) == {"type": "pong", "last_seq": 0}
    await comm.disconnect()


async def test_a_non_json_frame_on_the_fleet_stream_gets_an_error_too(operator: Any) -> None:
    comm = communicator("/ws/fleet/", await in_thread(login_cookie, operator))
    assert (await comm.connect())[0]
    await comm.send_to(text_data="hello")
    error, code = await error_then_close(comm)
    assert "JSON" in error and code == 4400
