"""Each session implements the hooks its stages are given (a renamed method fails here, not mid-call)."""
from __future__ import annotations

import pytest

from sessions.runtime import AgentSession, SessionOptions
from sessions.runtime.generation import ReplyHooks
from sessions.runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS
from sessions.runtime.realtime import RealtimeModel, RealtimeOptions, RealtimeSession
from sessions.runtime.realtime.replies import ReplyHooks as RealtimeReplyHooks
from sessions.runtime.realtime.user_turns import UserTurnHooks
from sessions.runtime.transports import LocalTransport
from sessions.runtime.turns import EndpointHooks

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
