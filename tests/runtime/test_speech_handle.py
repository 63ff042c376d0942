"""SpeechHandle.cancel: the one interruption object, and can_interrupt: the one rule."""
from __future__ import annotations

import pytest

from runtime.speech import SpeechHandle, can_interrupt

pytestmark = pytest.mark.asyncio


async def test_cancel_runs_every_subscriber_once_in_the_order_they_subscribed() -> None:
    h = SpeechHandle(source="say", text="hi")
    heard: list[tuple[str, str]] = []
    h.on_cancel(lambda reason: heard.append(("reply task", reason)))
    h.on_cancel(lambda reason: heard.append(("playout", reason)))
    assert h.cancel("operator") is True
    assert h.cancel("api") is False  # already cancelled: nothing runs twice
    assert heard == [("reply task", "operator"), ("playout", "operator")]
    assert h.interrupted and h.cancelled and h.cancel_reason == "operator"


async def test_a_stage_subscribing_after_the_cancel_is_told_at_once() -> None:
    h = SpeechHandle(source="say", text="hi")
    h.cancel("session_end")
    late: list[str] = []
    h.on_cancel(late.append)
    assert late == ["session_end"]


async def test_a_finished_speech_cannot_be_cancelled_and_drops_its_subscribers() -> None:
    h = SpeechHandle(source="say", text="hi")
    heard: list[str] = []
    h.on_cancel(heard.append)
    h._mark_done()
    assert h.cancel("operator") is False
    h.on_cancel(heard.append)
    assert heard == [] and not h.interrupted


@pytest.mark.parametrize("speech_allows,turn_allows,reason,expected", [
    (True, True, "user_speech", True),
    (False, True, "user_speech", False),  # say(..., allow_interruptions=False)
    (True, False, "user_speech", False),  # the agent's turn config forbids barge-in
    (False, False, "operator", True),  # the operator, the API and the session's end stop any speech
    (False, False, "api", True),
    (False, False, "session_end", True),
])
async def test_who_may_interrupt_which_speech(speech_allows: bool, turn_allows: bool, reason: str,
                                              expected: bool) -> None:
    h = SpeechHandle(source="say", text="hi", allow_interruptions=speech_allows)
    assert can_interrupt(h, reason, allow_interruptions=turn_allows) is expected


async def test_no_speech_or_a_finished_one_is_never_interrupted() -> None:
    assert can_interrupt(None, "operator", allow_interruptions=True) is False
    h = SpeechHandle(source="say", text="hi")
    h._mark_done()
    assert can_interrupt(h, "operator", allow_interruptions=True) is False
