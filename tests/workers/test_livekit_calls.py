"""Dispatched LiveKit calls end to end: the REST API, PostgreSQL, Redis, a real worker
subprocess running the voice runtime (LLM/STT/TTS on the OpenAI double), and the LiveKit
double in its own network namespace, reached over signal v1 + WebRTC across a veth pair.
The caller is a simulated participant of the double: it speaks an espeak-ng WAV and records
every frame the agent publishes."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from sessions.models import AgentSession, SessionEvent, SessionStatus
from tests.doubles.livekit_netns import LiveKitDoubleProcess
from tests.doubles.openai_server import OpenAIDouble, Reply
from tests.helpers import wait_for
from tests.workers.fleet import Fleet
from tests.workers.livekit_calls import (  # noqa: F401
    TONE_HZ,
    agent_track,
    agent_in_room,
    dispatch,
    dominant_hz,
    events,
    heard_pcm,
    lk_settings,
    loud_segment,
    loud_times,
    session_of,
    spoken_wav,
    start_worker,
    voice_agent,
    wait_event,
    wait_reply_heard,
)
from workers.models import Job, JobStatus

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]
REPLY = "It is sunny in Paris today, twenty two degrees."


def test_a_dispatched_call_is_heard_answered_with_a_tool_and_the_caller_hears_the_reply(
    lk_settings: LiveKitDoubleProcess, voice_agent: Any, fleet: Fleet, api_client: Any,  # noqa: F811
    openai_double: OpenAIDouble, tmp_path: Path,  # noqa: F811
) -> None:
    lk = lk_settings
    openai_double.transcripts.push("what is the weather in paris")
    openai_double.chat.push(Reply.tool("get_weather", {"city": "Paris"}), Reply.message(REPLY))
    worker = start_worker(fleet, lk)
    lk.client.add_caller("call-1", "caller")
    job_id = dispatch(api_client, room="call-1")
    session = session_of(job_id)
    agent_in_room(lk, "call-1", job_id)
    wait_for(lambda: AgentSession.objects.get(pk=session.pk).status == SessionStatus.ACTIVE, timeout=20,
             what="the session active")

    lk.client.speak("call-1", "caller", spoken_wav(tmp_path, "What is the weather in Paris?"))
    received = wait_reply_heard(lk, "call-1", "caller")

    # the worker created the room over Twirp before joining it over signal + WebRTC
    state = lk.client.state()
    assert [c["body"]["name"] for c in state["twirp_calls"] if c["method"] == "CreateRoom"] == ["call-1"]
    assert any(j["identity"] == f"agent-{job_id}" for j in state["joins"])
    # heard, transcribed, answered with a tool call
    assert events(session.pk, "stt_result")[-1]["text"] == "what is the weather in paris"
    assert [e["name"] for e in events(session.pk, "tool_called")] == ["get_weather"]
    assert openai_double.requests_to("/audio/transcriptions"), "the caller's speech never reached STT"
    # what the caller heard is the double's TTS signal for the reply: its length and its tone
    pcm, _, rms = heard_pcm(lk, "call-1", "caller")
    reply_audio = loud_segment(pcm, rms)
    expected_s = len(REPLY) * 0.030
    assert abs(len(reply_audio) / 48000 - expected_s) < 0.25, (len(reply_audio) / 48000, expected_s)
    assert abs(dominant_hz(reply_audio) - TONE_HZ) < 5
    assert received["spoken"][0]["ended_at"] > 0

    lk.client.leave("call-1", "caller")
    job = wait_for(lambda: (j := Job.objects.get(pk=job_id)).is_finished and j, timeout=30, what="the job to end")
    assert job.status == JobStatus.COMPLETED, job.failure_reason
    session = AgentSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.DISCONNECTED and session.end_reason == "participant_left"
    # a normal call logs no warnings (not the control channel's idle receive timeouts, not the SDK's FFI handles)
    noisy = [line for line in worker.log().splitlines() if " WARNING " in line or " ERROR " in line]
    assert noisy == [], "\n".join(noisy)
    assert "control channel" not in worker.log() and "FFI handle" not in worker.log()


def _call_up(lk: LiveKitDoubleProcess, client: Any, room: str, *, caller_first: bool = True) -> tuple[str, AgentSession]:
    if caller_first:
        lk.client.add_caller(room, "caller")
    job_id = dispatch(client, room=room)
    session = session_of(job_id)
    agent_in_room(lk, room, job_id)
    if not caller_first:
        lk.client.add_caller(room, "caller")
    wait_for(lambda: AgentSession.objects.get(pk=session.pk).status == SessionStatus.ACTIVE, timeout=20,
             what="the session active")
    return job_id, session


def _job_over(job_id: str, timeout: float = 40.0) -> Job:
    return wait_for(lambda: (j := Job.objects.get(pk=job_id)).is_finished and j, timeout=timeout, what="the job to end")


def test_the_caller_gets_transcripts_of_both_sides_and_a_chat_message_gets_a_spoken_answer(
    lk_settings: LiveKitDoubleProcess, voice_agent: Any, fleet: Fleet, api_client: Any,  # noqa: F811
    openai_double: OpenAIDouble, tmp_path: Path,  # noqa: F811
) -> None:
    lk = lk_settings
    openai_double.transcripts.push("what is the weather in paris")
    openai_double.chat.push(Reply.tool("get_weather", {"city": "Paris"}), Reply.message(REPLY),
                            Reply.message("Tomorrow it will rain in Paris."))
    start_worker(fleet, lk)
    job_id, session = _call_up(lk, api_client, "call-2")
    lk.client.speak("call-2", "caller", spoken_wav(tmp_path, "What is the weather in Paris?"))
    wait_reply_heard(lk, "call-2", "caller")
    chat_at = time.time()
    lk.client.chat("call-2", "caller", "And tomorrow?")
    received = wait_reply_heard(lk, "call-2", "caller", after=chat_at)

    streams = [s for s in received["text_streams"] if s["topic"] == "lk.transcription"]
    mine = [s["text"] for s in streams if s["sender"] == "caller"]
    agents = " ".join(s["text"] for s in streams if s["sender"] == f"agent-{job_id}")
    # the caller's words (spoken, then typed), sent on its behalf
    assert mine == ["what is the weather in paris", "And tomorrow?"]
    assert REPLY in agents and "Tomorrow it will rain in Paris." in agents
    assert all(s["attributes"].get("lk.transcribed_track_id", "").startswith("TR_") for s in streams)
    text = wait_event(session.pk, "text_received")
    assert (text["text"], text["participant_identity"]) == ("And tomorrow?", "caller")
    # the chat answer was spoken: heard after the chat was sent, as long as its TTS tone
    pcm, times, rms = heard_pcm(lk, "call-2", "caller")
    after_chat = [level if t > chat_at else 0.0 for t, level in zip(times, rms)]
    answer = loud_segment(pcm, after_chat)
    assert abs(len(answer) / 48000 - len("Tomorrow it will rain in Paris.") * 0.030) < 0.25
    assert abs(dominant_hz(answer) - TONE_HZ) < 5


def test_barge_in_stops_what_the_caller_hears_and_history_keeps_what_was_heard(
    lk_settings: LiveKitDoubleProcess, voice_agent: Any, fleet: Fleet, api_client: Any,  # noqa: F811
    openai_double: OpenAIDouble, tmp_path: Path,  # noqa: F811
) -> None:
    lk = lk_settings
    long_reply = ("Let me tell you everything about the weather in Paris this week, starting with Monday, which "
                  "will be sunny and warm, then Tuesday with some clouds in the afternoon, and Wednesday with rain.")
    openai_double.transcripts.push("tell me about the weather this week", "stop please")
    openai_double.chat.push(Reply.message(long_reply), Reply.message("Sure."))
    start_worker(fleet, lk)
    job_id, session = _call_up(lk, api_client, "call-3")
    lk.client.speak("call-3", "caller", spoken_wav(tmp_path, "Tell me about the weather this week."))
    wait_for(lambda: loud_times(agent_track(lk.client.caller("call-3", "caller"))) if
             lk.client.caller("call-3", "caller")["tracks"] else None, timeout=30, interval=0.1,
             what="the agent's reply reaching the caller")
    time.sleep(1.5)  # well into the reply
    lk.client.speak("call-3", "caller", spoken_wav(tmp_path, "Stop please, that is enough.", name="barge"))
    interrupted = wait_for(lambda: SessionEvent.objects.filter(session_id=session.pk, type="interrupted").first(),
                           timeout=20, what="the interruption")
    detected = interrupted.at.timestamp()
    time.sleep(1.5)
    _, times, rms = heard_pcm(lk, "call-3", "caller")
    reply_frames = [t for t, level in zip(times, rms) if level > 1000 and t < detected + 1.0]
    assert reply_frames and reply_frames[0] < detected  # the caller was hearing the reply
    last_heard = max(reply_frames)
    print(f"barge-in: the caller's audio stopped {1000 * (last_heard - detected):.0f} ms after detection")
    assert last_heard - detected < 0.100, f"audio went on {1000 * (last_heard - detected):.0f} ms after detection"
    # history: the assistant's turn holds only the part that was played
    items = [e for e in events(session.pk, "conversation_item_added") if e["role"] == "assistant"]
    cut = next(e for e in items if e["interrupted"])
    assert cut["content"] and long_reply.startswith(cut["content"].rstrip(".…").strip()[:20])
    assert len(cut["content"]) < len(long_reply) * 0.8
    assert interrupted.data["played_ms"] > 1000


def test_a_second_caller_joins_and_leaves_then_the_linked_callers_leave_ends_the_job_and_deletes_the_room(
    lk_settings: LiveKitDoubleProcess, voice_agent: Any, fleet: Fleet, api_client: Any,  # noqa: F811
) -> None:
    from sessions.models import Participant

    lk = lk_settings
    start_worker(fleet, lk)
    job_id, session = _call_up(lk, api_client, "call-4", caller_first=False)  # the job creates the room
    lk.client.add_caller("call-4", "supervisor", kind="sip")
    wait_event(session.pk, "participant_joined", where=lambda e: e["participant"]["identity"] == "supervisor")
    lk.client.leave("call-4", "supervisor")
    left = wait_event(session.pk, "participant_left", where=lambda e: e["participant"]["identity"] == "supervisor")
    assert left["participant"]["kind"] == "sip" and left["participant"]["connection_state"] == "disconnected"
    joined = {e["participant"]["identity"]: e["participant"] for e in events(session.pk, "participant_joined")}
    assert set(joined) == {"caller", "supervisor"}
    assert all(p["sid"].startswith("PA_") and [t["kind"] for t in p["tracks"]] == ["audio"] for p in joined.values())
    rows = {p.identity: p for p in Participant.objects.filter(session_id=session.pk)}
    assert rows["supervisor"].kind == "sip" and rows["supervisor"].left_at is not None
    assert rows["supervisor"].connection_state == "disconnected" and rows["supervisor"].audio_track["sid"].startswith("TR_")
    assert rows["caller"].left_at is None and rows["caller"].audio_track["source"] == "microphone"

    lk.client.leave("call-4", "caller")
    job = _job_over(job_id)
    assert job.status == JobStatus.COMPLETED, job.failure_reason
    session = AgentSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.DISCONNECTED and session.end_reason == "participant_left"
    wait_for(lambda: "call-4" in lk.client.state()["deleted_rooms"], timeout=10, what="the room deleted")
    assert lk.client.room("call-4") is None
    assert Participant.objects.get(session_id=session.pk, identity="caller").left_at is not None


def test_a_room_that_was_there_before_the_job_is_left_alone(
    lk_settings: LiveKitDoubleProcess, voice_agent: Any, fleet: Fleet, api_client: Any,  # noqa: F811
) -> None:
    lk = lk_settings
    start_worker(fleet, lk)
    job_id, _ = _call_up(lk, api_client, "call-4b", caller_first=True)  # the caller made the room
    lk.client.leave("call-4b", "caller")
    assert _job_over(job_id).status == JobStatus.COMPLETED
    time.sleep(0.5)
    assert "call-4b" not in lk.client.state()["deleted_rooms"]


def test_the_server_vanishing_mid_call_reconnects_then_fails_the_job_with_the_reason(
    lk_settings: LiveKitDoubleProcess, voice_agent: Any, fleet: Fleet, api_client: Any,  # noqa: F811
) -> None:
    lk = lk_settings
    start_worker(fleet, lk, LIVEKIT_RECONNECT_TIMEOUT_SECONDS=5)
    job_id, session = _call_up(lk, api_client, "call-5")
    lk.vanish()
    gone = time.monotonic()
    wait_event(session.pk, "reconnecting", timeout=15)
    job = _job_over(job_id, timeout=30)
    assert time.monotonic() - gone < 15  # bounded: the reconnect timeout, not the SDK's ~21 s of retries
    assert job.status == JobStatus.FAILED
    assert job.failure_reason.startswith("livekit_unreachable: the LiveKit server could not be reached again")
    session = AgentSession.objects.get(pk=session.pk)
    assert session.end_reason == "livekit_unreachable"
    assert any("could not be reached again within 5s" in e["message"] for e in events(session.pk, "error"))


def test_the_room_deleted_server_side_ends_the_session_room_deleted(
    lk_settings: LiveKitDoubleProcess, voice_agent: Any, fleet: Fleet, api_client: Any,  # noqa: F811
) -> None:
    lk = lk_settings
    start_worker(fleet, lk)
    job_id, session = _call_up(lk, api_client, "call-6")
    lk.client.delete_room("call-6")
    job = _job_over(job_id)
    session = AgentSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.DISCONNECTED and session.end_reason == "room_deleted"
    assert job.status == JobStatus.FAILED and job.failure_reason.startswith("room_deleted: the LiveKit room was deleted")
    assert not events(session.pk, "reconnecting")


def test_a_wrong_api_secret_fails_the_job_naming_livekit_authentication_and_spares_the_breaker(
    lk_settings: LiveKitDoubleProcess, voice_agent: Any, fleet: Fleet, api_client: Any,  # noqa: F811
) -> None:
    from tests.workers.livekit_calls import livekit_env
    from workers.models import Worker

    lk = lk_settings
    (worker,) = fleet.start("lk", **{**livekit_env(lk, secret="a-wrong-secret-for-this-livekit-server-000")})
    jobs = [dispatch(api_client, room=f"call-7-{i}") for i in range(3)]  # as many as the breaker's threshold
    for job_id in jobs:
        job = _job_over(job_id, timeout=30)
        assert job.status == JobStatus.FAILED
        assert job.failure_reason.startswith("LiveKit authentication failed (")
        assert "401" in job.failure_reason and "LIVEKIT_API_SECRET" in job.failure_reason
        session = AgentSession.objects.get(job_id=job_id)
        assert session.status == SessionStatus.ERROR and session.error == job.failure_reason
    row = Worker.objects.get(pk=worker.name)
    assert row.circuit_state == "closed" and row.consecutive_failures == 0
    assert "a-wrong-secret" not in worker.log()


def _loud_runs(rms: list[float], threshold: float = 1000.0) -> list[tuple[int, int]]:
    """(first frame, frames) of each run of consecutive loud frames."""
    runs, start = [], None
    for i, level in enumerate([*rms, 0.0]):
        if level > threshold and start is None:
            start = i
        elif level <= threshold and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


@pytest.mark.timeout(300)
def test_twenty_concurrent_calls_in_one_worker_process_all_get_their_answer(
    lk_settings: LiveKitDoubleProcess, voice_agent: Any, fleet: Fleet, api_client: Any,  # noqa: F811
    openai_double: OpenAIDouble, tmp_path: Path,  # noqa: F811
) -> None:
    """Must-show 6: twenty callers, each in its own room of the double, all hosted by one
    worker process; every caller asks its question and hears its whole answer, the double's
    TTS tone. The callers behave like real participants: 20 ms frames all the time, silence
    included (see tests/doubles/livekit_media.py for why that matters to the agent)."""
    lk, n = lk_settings, 20
    answer = "It is sunny in Paris."
    # every utterance gets the same transcript and answer: were a question heard as two
    # utterances, a FIFO of scripted replies would hand one room another room's turn
    openai_double.default_transcript = "what is the weather in paris"
    openai_double.default_chat_text = answer
    # generous join timeouts: twenty WebRTC peers join a Python double on shared cores
    worker = start_worker(fleet, lk, concurrency=n + 2, WORKER_MAX_CONCURRENT_JOBS=n + 2,
                          LIVEKIT_CONNECT_TIMEOUT_SECONDS=90)
    wav = spoken_wav(tmp_path, "What is the weather in Paris?")
    rooms = [f"many-{i}" for i in range(n)]
    jobs: dict[str, str] = {}
    for room in rooms:  # the calls arrive together; the worker joins them concurrently
        lk.client.add_caller(room, "caller")
        jobs[room] = dispatch(api_client, room=room)
    for room in rooms:
        agent_in_room(lk, room, jobs[room], timeout=120)
    wait_for(lambda: AgentSession.objects.filter(job_id__in=jobs.values(), status=SessionStatus.ACTIVE).count() == n,
             timeout=60, what="every call up at once")
    assert {Job.objects.get(pk=j).assigned_worker_id for j in jobs.values()} == {worker.name}
    # and every caller gets the agent's voice track: the double (one Python process) negotiates
    # forty peers' media; a question asked before the agent's track reaches its caller would be
    # answered into a track nobody receives yet
    wait_for(lambda: all(lk.client.caller(room, "caller")["tracks"] for room in rooms), timeout=120, interval=1.0,
             what="every caller to receive the agent's track")
    for room in rooms:
        lk.client.speak(room, "caller", wav)
    frames_needed = int(len(answer) * 0.030 / 0.020 * 0.9)  # the whole reply: 30 ms of tone per character
    answered: set[str] = set()

    def all_answered() -> bool:
        for room in set(rooms) - answered:
            received = lk.client.caller(room, "caller", loud_above=1000.0)
            if received["tracks"] and len(agent_track(received)["loud_times"]) >= frames_needed:
                answered.add(room)
        return len(answered) == n

    wait_for(all_answered, timeout=120, interval=1.0,
             what=f"every caller's answer (answered so far: {sorted(answered)})")
    time.sleep(1.0)  # the replies' last frames
    for room in rooms:  # each heard its whole reply, and it is the double's TTS tone
        pcm, _, rms = heard_pcm(lk, room, "caller")
        runs = _loud_runs(rms)
        # every loud stretch the caller heard, end to end: with twenty calls on two shared
        # cores a loop stall may put a short silence inside a reply; how often, and how long,
        # is bench/livekit_calls.py's to measure (a timing figure), what was heard is this test's
        heard = loud_segment(pcm, rms)
        session = AgentSession.objects.get(job_id=jobs[room])
        turns = [(e["role"], e["content"], e["interrupted"]) for e in events(session.pk, "conversation_item_added")]
        assert len(heard) / 48000 > len(answer) * 0.030 * 0.8, \
            f"{room}: the caller heard {len(heard) / 48000:.2f}s of the {len(answer) * 0.030:.2f}s reply; " \
            f"loud runs (first frame, frames): {runs}; the conversation: {turns}"
        assert abs(dominant_hz(heard) - TONE_HZ) < 5, f"{room}: heard {dominant_hz(heard):.0f} Hz, not the TTS tone"
        # one question, one answer played out: a question heard as fragments would interrupt it
        assert ("assistant", answer, False) in turns, f"{room}: the conversation: {turns}"
    for room, job_id in jobs.items():  # and the session heard the question and answered it
        session = AgentSession.objects.get(job_id=job_id)
        assert "what is the weather in paris" in [e["text"] for e in events(session.pk, "stt_result")], room
        assert any(e["role"] == "assistant" and e["content"] == answer
                   for e in events(session.pk, "conversation_item_added")), room
    for room in rooms:
        lk.client.leave(room, "caller")
    for job_id in jobs.values():
        assert _job_over(job_id, timeout=60).status == JobStatus.COMPLETED
