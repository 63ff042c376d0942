"""Each session implements the hooks its stages are given (a renamed method fails here, not mid-call)."""
from __future__ import annotations

import pytest

from runtime import AgentSession, SessionOptions
from runtime.generation import ReplyHooks
from runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS
from runtime.realtime import RealtimeModel, RealtimeOptions, RealtimeSession
from runtime.realtime.replies import ReplyHooks as RealtimeReplyHooks
from runtime.realtime.user_turns import UserTurnHooks
from runtime.transports import LocalTransport
from runtime.turns import EndpointHooks

pytestmark = pytest.mark.asyncio


async def test_the_cascaded_session_is_its_endpointer_s_and_replies_hooks() -> None:
    session = AgentSession(options=SessionOptions(), llm=FakeLLM("hi"), stt=FakeSTT("hello"), tts=FakeTTS(),
                           transport=LocalTransport())
    assert isinstance(session, EndpointHooks)
    assert isinstance(session, ReplyHooks)


async def test_the_realtime_session_is_its_user_turns_and_replies_hooks() -> None:
    session = RealtimeSession(options=RealtimeOptions(), model=RealtimeModel(), transport=LocalTransport())
    assert isinstance(session, UserTurnHooks)
    assert isinstance(session, RealtimeReplyHooks)
