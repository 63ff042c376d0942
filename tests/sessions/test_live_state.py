"""A session row's live columns, folded from its events by the sink, at most once a second."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from agents.models import Agent
from sessions.agent_metrics import agent_metrics_settle
from sessions.event_sink import DjangoEventSink
from sessions.live_state import LiveState, audio_state_from_runtime, percentile
from sessions.models import AgentSession, SessionStatus, validate_audio_state
from runtime import events as ev
from runtime.session_core import AudioState
from sessions.services import session_fail, session_transition
from tests.helpers import wait_for

pytestmark = pytest.mark.usefixtures("writer_idle")

T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)


def turn_metrics(turn: int, e2e: float, **fields: float) -> ev.MetricsCollected:
    return ev.MetricsCollected(metrics=ev.TurnMetrics(
        turn_id=f"turn_{turn}", end_of_utterance_delay_ms=100.0, stt_duration_ms=50.0, llm_ttft_ms=200.0,
        tts_ttfb_ms=80.0, end_to_end_ms=e2e, llm_calls=1, prompt_tokens=30, completion_tokens=10, total_tokens=40,
        tts_characters=25, **fields))


def a_call() -> list[ev.Event]:
    return [
        ev.StateChanged(old_state="connected", new_state="active"),
        ev.AgentStateChanged(old_state="initializing", new_state="listening"),
        ev.UserStateChanged(old_state="listening", new_state="speaking"),
        ev.UserStateChanged(old_state="speaking", new_state="listening"),
        ev.TurnEnded(turn_id="turn_1", source="audio", text="Where is my order?"),
        ev.ConversationItemAdded(role="user", content="Where is my order?"),
        ev.AgentStateChanged(old_state="listening", new_state="thinking"),
        ev.ToolCalled(call_id="c1", name="lookup_order", arguments="{}"),
        ev.ToolError(call_id="c1", name="lookup_order", error="timeout", error_kind="timeout"),
        ev.ToolCalled(call_id="c2", name="lookup_order", arguments="{}"),
        ev.ToolCompleted(call_id="c2", name="lookup_order", output="shipped", duration_ms=12.0),
        ev.AgentStateChanged(old_state="thinking", new_state="speaking"),
        ev.ResponseGenerated(speech_id="sp1", text="It shipped yesterday."),
        ev.ConversationItemAdded(role="assistant", content="It shipped yesterday."),
        turn_metrics(1, 700.0),
        ev.TurnEnded(turn_id="turn_2", source="text", text="Thanks"),
        ev.Interrupted(speech_id="sp2", played_ms=300.0, played_text="You're"),
        turn_metrics(2, 900.0),
        ev.Error(source="tts", message="tts hiccup"),
        ev.AgentStateChanged(old_state="speaking", new_state="listening"),
    ]


@pytest.mark.django_db(transaction=True)
def test_the_row_holds_agent_state_metrics_and_conversation_after_the_events(live_session: AgentSession) -> None:
    sink = DjangoEventSink(live_session.session_id)
    for event in a_call():
        sink.emit(event)
    assert sink.close()

    row = AgentSession.objects.get(pk=live_session.pk)
    assert (row.agent_state, row.user_state) == ("listening", "listening")
    m = row.metrics
    assert (m["turns"], m["responses"], m["interruptions"], m["tool_calls"], m["tool_errors"], m["errors"]) == (2, 1, 1, 2, 1, 1)
    assert m["tokens"] == {"prompt": 60, "completion": 20, "total": 80}
    assert m["characters"] == {"user": len("Where is my order?") + len("Thanks"), "agent": len("It shipped yesterday."), "tts": 50}
    assert m["latency_ms"]["end_to_end"] == {"count": 2, "p50": 700.0, "p95": 900.0, "max": 900.0}
    assert set(m["latency_ms"]) == {"end_of_utterance", "stt", "llm_ttft", "tts_ttfb", "end_to_end"}
    c = row.conversation_state
    assert c["turn_count"] == 2 and c["items"] == 2
    assert c["last_user_text"] == "Where is my order?" and c["last_agent_text"] == "It shipped yesterday."
    assert row.audio_state["latency_ms"] == 900 and row.audio_state["stream_active"] is True
    assert validate_audio_state(row.audio_state) == []
    row.full_clean()


@pytest.mark.django_db(transaction=True)
def test_the_writer_keeps_the_row_current_without_a_flush(live_session: AgentSession) -> None:
    sink = DjangoEventSink(live_session.session_id)
    sink.emit(ev.AgentStateChanged(old_state="initializing", new_state="listening"))
    deadline = time.monotonic() + 5  # for both states
    wait_for(lambda: AgentSession.objects.get(pk=live_session.pk).agent_state == "listening",
             timeout=5, interval=0.05, what="the live state to be written")
    sink.emit(ev.AgentStateChanged(old_state="listening", new_state="thinking"))
    wait_for(lambda: AgentSession.objects.get(pk=live_session.pk).agent_state == "thinking",
             timeout=deadline - time.monotonic(), interval=0.05, what="the second state, within a second or so")
    assert sink.close()


def test_it_writes_at_most_once_a_second_and_only_what_changed() -> None:
    state = LiveState()
    state.feed("agent_state_changed", T0, {"old_state": "initializing", "new_state": "listening"})
    first = state.due(now=100.0)
    assert first is not None and first["agent_state"] == "listening"
    state.written(first, now=100.0)
    state.feed("agent_state_changed", T0, {"old_state": "listening", "new_state": "thinking"})
    assert state.due(now=100.5) is None  # under a second since the last write
    second = state.due(now=101.0)
    assert second == {"agent_state": "thinking"}
    state.written(second, now=101.0)
    assert state.due(now=105.0) is None  # nothing new
    state.feed("agent_state_changed", T0, {"old_state": "thinking", "new_state": "speaking"})
    assert state.due(now=101.2, force=True) == {"agent_state": "speaking"}  # the session's end


def test_the_runtime_audio_meter_maps_to_the_seed_fields_the_model_validates() -> None:
    meter = AudioState(sample_rate=48000, channels=1, frame_ms=20, vad_enabled=True, vad_sensitivity=0.7,
                       speaking=True, muted=False, current_latency_ms=812.4, stream_active=True,
                       last_audio_time=T0.timestamp(), frames_received=50)
    state = audio_state_from_runtime(meter.as_dict())
    assert state["format"] == {"encoding": "pcm16", "sample_rate": 48000, "channels": 1}
    assert (state["vad_enabled"], state["vad_sensitivity"], state["is_speaking"], state["is_muted"]) == (True, 0.7, True, False)
    assert (state["buffer_size"], state["latency_ms"], state["stream_active"]) == (960, 812, True)
    assert state["last_audio_at"] == "2026-11-21T10:00:00Z"
    assert validate_audio_state(state) == []
    odd = audio_state_from_runtime(AudioState(sample_rate=11025, channels=1).as_dict())
    assert "format" not in odd and "buffer_size" not in odd and validate_audio_state(odd) == []


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile([5.0], 95)) == (50.0, 95.0, 5.0)


@pytest.mark.django_db(transaction=True)
def test_agent_metrics_add_up_its_sessions_when_one_ends(active_agent: Agent) -> None:
    def session(status: str = SessionStatus.ACTIVE) -> AgentSession:
        return AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id="r",
                                           status=status)

    first, second, third = session(), session(), session()
    for i, s in enumerate((first, second)):
        sink = DjangoEventSink(s.session_id)
        for turn in range(10):
            sink.emit(turn_metrics(turn, 100.0 * (turn + 1) + i * 1000))
        assert sink.close()
    AgentSession.objects.filter(pk=first.pk).update(started_at=T0)
    first.refresh_from_db()
    session_transition(session=first, status=SessionStatus.DISCONNECTED, ended_at=T0 + timedelta(minutes=3))
    metrics = Agent.objects.get(pk=active_agent.pk).metrics
    assert (metrics["calls"], metrics["errors"], metrics["error_rate"], metrics["live_sessions"]) == (1, 0, 0.0, 2)
    assert metrics["minutes"] == 3.0
    AgentSession.objects.filter(pk=second.pk).update(started_at=T0)
    second.refresh_from_db()
    session_fail(session=second, error="boom")
    assert agent_metrics_settle()  # an end right after a recompute is counted at the end of its window
    metrics = Agent.objects.get(pk=active_agent.pk).metrics
    assert (metrics["calls"], metrics["errors"], metrics["error_rate"], metrics["live_sessions"]) == (2, 1, 0.5, 1)
    # 20 turns: 100..1000 and 1100..2000 ms
    assert metrics["latency_p50_ms"] == 1000.0 and metrics["latency_p95_ms"] == 1900.0
    assert metrics["latency_ms"]["end_to_end"]["count"] == 20
    assert third.status == SessionStatus.ACTIVE


@pytest.mark.django_db(transaction=True)
def test_a_shared_cycle_writes_each_sessions_live_state_and_nothing_else(active_agent: Agent) -> None:
    """The writer's shared cycle stores the live state of every session in one UPDATE
    (sessions.event_rows.live_states_write): each row gets its own changed fields, the
    columns a session did not change keep their values, and another session's row is untouched."""
    from sessions.event_sink import _writer

    rows = [AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id=f"lv{i}",
                                        status="active") for i in range(3)]
    AgentSession.objects.filter(pk=rows[2].pk).update(agent_state="thinking", metrics={"kept": 1})
    sinks = [DjangoEventSink(row.session_id) for row in rows[:2]]
    with _writer()._lock:  # the writer's next cycle sees both sinks' events at once
        sinks[0].emit(ev.AgentStateChanged(old_state="initializing", new_state="speaking"))
        sinks[1].emit(ev.UserStateChanged(old_state="listening", new_state="speaking"))
        sinks[1].emit(ev.ConversationItemAdded(role="user", content="it's \"quoted\" \\ and ünïcode"))
    assert all(sink.close() for sink in sinks)
    first, second, other = (AgentSession.objects.get(pk=row.pk) for row in rows)
    assert (first.agent_state, first.user_state) == ("speaking", "listening")
    assert (second.agent_state, second.user_state) == ("initializing", "speaking")
    assert second.conversation_state["last_user_text"] == "it's \"quoted\" \\ and ünïcode"
    assert (other.agent_state, other.metrics) == ("thinking", {"kept": 1})
    for row in (first, second):
        assert validate_audio_state(row.audio_state) == [] and row.metrics["turns"] == 0
