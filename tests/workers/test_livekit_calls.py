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

from sessions.models import AgentSession, SessionStatus
from tests.doubles.fixtures import livekit_double, openai_double  # noqa: F401
from tests.doubles.livekit_netns import LiveKitDoubleProcess
from tests.doubles.openai_server import OpenAIDouble, Reply
from tests.workers.fleet import Fleet
from tests.workers.helpers import wait_for
from tests.workers.livekit_calls import (  # noqa: F401
    TONE_HZ,
    agent_in_room,
    dispatch,
    dominant_hz,
    events,
    fleet,
    heard_pcm,
    jobs_client,
    lk_settings,
    loud_segment,
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
    lk_settings: LiveKitDoubleProcess, voice_agent: Any, fleet: Fleet, jobs_client: Any,  # noqa: F811
    openai_double: OpenAIDouble, tmp_path: Path,  # noqa: F811
) -> None:
    lk = lk_settings
    openai_double.transcripts.push("what is the weather in paris")
    openai_double.chat.push(Reply.tool("get_weather", {"city": "Paris"}), Reply.message(REPLY))
    start_worker(fleet, lk)
    lk.client.add_caller("call-1", "caller")
    job_id = dispatch(jobs_client, room="call-1")
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
