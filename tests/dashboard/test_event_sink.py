"""The Django event sink: store, then broadcast; batching; audio aggregation; DB errors."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from sessions.event_sink import DjangoEventSink, broadcast_session_events, session_group
from sessions.models import AgentSession, Participant, SessionEvent
from runtime import events as ev
from sessions.services import session_events_append
from tests.dashboard.helpers import in_thread
from tests.helpers import wait_for_async

pytestmark = pytest.mark.django_db(transaction=True)


class GroupListener:
    """Joins a session's group on the (in-memory) channel layer and collects envelopes."""

    def __init__(self, session_id: str) -> None:
        self.layer = get_channel_layer()
        self.group = session_group(session_id)
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(self.group, self.channel)

    def drain(self) -> list[dict[str, Any]]:
        async def collect() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            while True:
                try:
                    message = await asyncio.wait_for(self.layer.receive(self.channel), 0.2)
                except asyncio.TimeoutError:
                    return out
                out.extend(message["events"])

        return async_to_sync(collect)()


def test_it_stores_every_event_with_gap_free_seq_then_broadcasts(live_session: AgentSession) -> None:
    listener = GroupListener(live_session.session_id)
    sink = DjangoEventSink(live_session.session_id)
    sink.emit(ev.SttResult(text="hello", is_final=False))
    sink.emit(ev.SttResult(text="hello there", is_final=True))
    sink.emit(ev.ToolCalled(call_id="c1", name="lookup_order", arguments='{"order_id": "42"}'))
    sink.emit({"type": "operator_action", "data": {"action": "say", "text": "hi", "by": "operator"}})
    assert sink.close()

    rows = list(SessionEvent.objects.filter(session=live_session).order_by("seq"))
    assert [r.seq for r in rows] == [1, 2, 3, 4]
    assert [r.type for r in rows] == ["stt_result", "stt_result", "tool_called", "operator_action"]
    assert rows[1].data["text"] == "hello there" and rows[1].data["is_final"] is True
    assert "type" not in rows[2].data and "at" not in rows[2].data
    assert rows[2].data["arguments"] == '{"order_id": "42"}'

    received = listener.drain()
    assert [e["seq"] for e in received] == [1, 2, 3, 4]
    assert received[0] == rows[0].envelope()
    assert set(received[0]) == {"session_id", "seq", "type", "at", "data"}


def test_a_burst_is_stored_in_batches_not_one_write_per_event(live_session: AgentSession) -> None:
    sink = DjangoEventSink(live_session.session_id, max_batch=100)
    for i in range(250):
        sink.emit(ev.TextReceived(text=f"m{i}"))
    assert sink.close()
    seqs = list(SessionEvent.objects.filter(session=live_session).values_list("seq", flat=True))
    assert seqs == list(range(1, 251))
    assert sink.stored == 250


def test_audio_events_are_stored_as_the_runtime_aggregated_them(live_session: AgentSession) -> None:
    # The runtime meters audio and emits about one audio_received per second; the sink stores
    # each as it is (aggregating per frame is the runtime's, tests/runtime/test_session_api.py).
    sink = DjangoEventSink(live_session.session_id)
    start = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)
    emitted = [ev.AudioReceived(frames=50, duration_ms=1000.0, level_dbfs=-20.0, sample_rate=48000, channels=2,
                                at=start + timedelta(seconds=i)) for i in range(3)]
    for i, event in enumerate(emitted):
        sink.emit(event)
        if i == 1:
            sink.emit(ev.TextReceived(text="hi", at=start + timedelta(seconds=1.5)))
    assert sink.close()

    audio = list(SessionEvent.objects.filter(session=live_session, type="audio_received").order_by("seq"))
    assert [a.data for a in audio] == [e.model_dump(mode="json", exclude={"type", "at"}) for e in emitted]
    assert [a.seq for a in audio] == [1, 2, 4]
    assert SessionEvent.objects.filter(session=live_session, type="text_received").count() == 1


def test_tts_audio_is_stored_one_row_per_synthesized_segment(live_session: AgentSession) -> None:
    sink = DjangoEventSink(live_session.session_id)
    sink.emit(ev.TtsAudio(speech_id="sp1", text="Hello.", duration_ms=600, ttfb_ms=80, bytes=28800))
    sink.emit(ev.TtsAudio(speech_id="sp1", text="How can I help?", duration_ms=900, ttfb_ms=70, bytes=43200))
    assert sink.close()
    rows = list(SessionEvent.objects.filter(session=live_session, type="tts_audio").order_by("seq"))
    assert [(r.data["text"], r.data["bytes"]) for r in rows] == [("Hello.", 28800), ("How can I help?", 43200)]


def test_it_survives_a_database_error_and_stores_the_events_later(live_session: AgentSession) -> None:
    # A real failure: the session row is missing, so the seq counter cannot be read.
    session_id = live_session.session_id
    agent, version = live_session.agent, live_session.agent_version
    live_session.delete()
    sink = DjangoEventSink(session_id)
    sink.emit(ev.TextReceived(text="while the database fails"))
    assert sink.flush(timeout=0.5) is False
    assert sink.backlog == 1

    AgentSession.objects.create(session_id=session_id, agent=agent, agent_version=version, room_id="room-1")
    sink.emit(ev.TextReceived(text="after recovery"))
    assert sink.close(timeout=15)
    texts = list(SessionEvent.objects.filter(session_id=session_id).order_by("seq").values_list("seq", "data__text"))
    assert texts == [(1, "while the database fails"), (2, "after recovery")]


def test_events_emitted_after_close_are_ignored(live_session: AgentSession) -> None:
    sink = DjangoEventSink(live_session.session_id)
    sink.emit(ev.TextReceived(text="one"))
    assert sink.close()
    sink.emit(ev.TextReceived(text="late"))
    assert SessionEvent.objects.filter(session=live_session).count() == 1


async def test_emit_from_the_event_loop_does_not_wait_and_aclose_drains(live_session: AgentSession) -> None:
    sink = DjangoEventSink(live_session.session_id)
    for i in range(20):
        sink.emit(ev.AgentStateChanged(old_state="listening", new_state="thinking"))
    assert await sink.aclose()
    count = await in_thread(SessionEvent.objects.filter(session_id=live_session.session_id).count)
    assert count == 20


def test_broadcast_helper_sends_rows_appended_outside_a_sink(live_session: AgentSession) -> None:
    listener = GroupListener(live_session.session_id)
    rows = session_events_append(
        session_id=live_session.session_id,
        events=[("operator_action", datetime.now(timezone.utc), {"action": "end", "by": "operator"})],
    )
    broadcast_session_events(rows)
    assert [e["type"] for e in listener.drain()] == ["operator_action"]


def test_the_last_audio_is_stored_before_session_stopped(live_session: AgentSession) -> None:
    sink = DjangoEventSink(live_session.session_id)
    start = datetime.now(timezone.utc)
    # the runtime's last (partial) second of agent audio, then the session ends
    sink.emit(ev.AudioStreamed(frames=10, duration_ms=200.0, level_dbfs=-20.0, speech_id="sp1", at=start))
    sink.emit(ev.SessionStopped(reason="ended", at=start + timedelta(milliseconds=200)))
    assert sink.close()
    types = list(SessionEvent.objects.filter(session=live_session).order_by("seq").values_list("type", flat=True))
    assert types == ["audio_streamed", "session_stopped"]


def test_many_sessions_events_are_stored_and_broadcast_together(active_agent: Any) -> None:
    from sessions.event_sink import _writer, on_events_stored, _stored_listeners

    sessions = [AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id=f"r{i}",
                                            status="active") for i in range(3)]
    listeners = [GroupListener(s.session_id) for s in sessions]
    batches: list[list[tuple[str, int]]] = []
    on_events_stored(lambda rows: batches.append([(r.session_id, r.seq) for r in rows]))
    try:
        sinks = [DjangoEventSink(s.session_id) for s in sessions]
        with _writer()._lock:  # the writer's next cycle sees every sink's events at once
            for sink in sinks:
                for i in range(2):
                    sink.emit(ev.TextReceived(text=f"m{i}"))
            sinks[1].emit(ev.ParticipantJoined(participant=ev.ParticipantInfo(identity="caller-1", kind="standard")))
        assert all(sink.close() for sink in sinks)
    finally:
        _stored_listeners.pop()
    # one cycle: the three sessions' batches in one write, handed on together
    assert sorted(batches[0]) == sorted((s.session_id, seq) for s in sessions for seq in (1, 2) + ((3,) if s is sessions[1] else ()))
    # the same transaction kept the participant rows
    assert list(Participant.objects.filter(session=sessions[1]).values_list("identity", flat=True)) == ["caller-1"]
    for session, listener in zip(sessions, listeners):
        expected = [1, 2, 3] if session is sessions[1] else [1, 2]
        assert list(SessionEvent.objects.filter(session=session).order_by("seq").values_list("seq", flat=True)) == expected
        assert [e["seq"] for e in listener.drain()] == expected


def test_rows_of_a_shared_cycle_are_the_stored_rows(active_agent: Any) -> None:
    """The shared cycle inserts without the ORM (sessions.event_rows): the rows it hands to the
    stored-events listeners (webhooks) and the broadcaster are what the database holds."""
    from sessions.event_sink import _writer, on_events_stored, _stored_listeners

    sessions = [AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id=f"s{i}",
                                            status="active") for i in range(2)]
    handed: list[SessionEvent] = []
    on_events_stored(handed.extend)
    try:
        sinks = [DjangoEventSink(s.session_id) for s in sessions]
        with _writer()._lock:
            for n, sink in enumerate(sinks):
                sink.emit(ev.TextReceived(text=f"first of {n}"))
                sink.emit(ev.TextReceived(text=f"second of {n} ünïcode"))
        assert all(sink.close() for sink in sinks)
    finally:
        _stored_listeners.pop()
    assert len(handed) == 4
    stored = {row.pk: row for row in SessionEvent.objects.filter(session__in=sessions)}
    for row in handed:
        assert row.pk in stored and not row._state.adding
        assert row.envelope() == stored[row.pk].envelope()
    assert sorted((r.session_id, r.seq, r.data["text"]) for r in handed) == sorted(
        (s.session_id, seq, f"{'first' if seq == 1 else 'second'} of {n}{'' if seq == 1 else ' ünïcode'}")
        for n, s in enumerate(sessions) for seq in (1, 2))


def test_one_sessions_failing_batch_does_not_hold_back_the_others(live_session: AgentSession, active_agent: Any) -> None:
    from sessions.event_sink import _writer

    # a real failure: the other session's row is missing, so its seq counter cannot be read
    missing = AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id="gone")
    missing_id = missing.session_id
    missing.delete()
    good, bad = DjangoEventSink(live_session.session_id), DjangoEventSink(missing_id)
    with _writer()._lock:  # both batches in one cycle: the shared write fails, then each goes alone
        bad.emit(ev.TextReceived(text="lost row"))
        good.emit(ev.TextReceived(text="kept"))
    assert good.close()
    assert list(SessionEvent.objects.filter(session=live_session).values_list("seq", "data__text")) == [(1, "kept")]
    assert bad.flush(timeout=0.5) is False and bad.backlog == 1
    AgentSession.objects.create(session_id=missing_id, agent=active_agent, agent_version=active_agent.version, room_id="back")
    assert bad.close(timeout=15)
    assert list(SessionEvent.objects.filter(session_id=missing_id).values_list("seq", "data__text")) == [(1, "lost row")]


async def test_an_aclose_its_caller_gave_up_on_still_stores_and_closes(live_session: AgentSession) -> None:
    from sessions.event_sink import _writer

    sink = DjangoEventSink(live_session.session_id)
    sink.emit(ev.TextReceived(text="last words"))
    writer = _writer()
    writer._lock.acquire()  # the writer cannot run its cycle: the flush cannot finish yet
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(sink.aclose(), 0.05)  # as the job context's shutdown timeout does
    finally:
        writer._lock.release()
    # nobody awaits it any more, yet the close carries on: stored, closed, out of the writer
    await wait_for_async(lambda: sink not in writer._sinks, timeout=15, what="the sink to leave the writer")
    assert sink._closed and await sink.aclose() is True
    rows = await in_thread(lambda: list(SessionEvent.objects.filter(session=live_session).values_list("seq", "data__text")))
    assert rows == [(1, "last words")]
