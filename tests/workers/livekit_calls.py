"""Personas and helpers of the LiveKit call tests: a voice agent on the OpenAI double, a
real worker subprocess pointed at the LiveKit double (in its network namespace), spoken
questions made with espeak-ng, and readers for what a simulated caller received."""
from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rest_framework.test import APIClient

from agents.models import Agent
from sessions.models import AgentSession, SessionEvent
from tests.doubles.fixtures import double_egress_env
from tests.doubles.livekit_netns import LiveKitDoubleProcess
from tests.helpers import wait_for
from tests.workers.fleet import Fleet, WorkerProcess

KEY_ENV = "LIVEKIT_CALLS_OPENAI_KEY"
RATE = 48000
TONE_HZ = 220.0  # the OpenAI double's speech: a 220 Hz tone, 30 ms per character


def spoken_wav(directory: Path, text: str, name: str = "question") -> Path:
    """Real speech for the caller's microphone (espeak-ng), 16-bit mono WAV."""
    path = directory / f"{name}.wav"
    subprocess.run(["espeak-ng", "-s", "160", "-w", str(path), text], check=True, capture_output=True)
    return path


@pytest.fixture
def voice_agent(agent_on_double: Callable[..., Agent]) -> Agent:
    return agent_on_double("concierge", key_env=KEY_ENV, instructions="You are a concise hotel concierge.",
                           tools=["get_weather"],
                           turn_config={"min_endpointing_delay_ms": 300, "min_interruption_duration_ms": 300})


def livekit_env(double: LiveKitDoubleProcess, *, secret: str | None = None) -> dict[str, str]:
    return {"LIVEKIT_URL": double.url, "LIVEKIT_API_KEY": double.api_key,
            "LIVEKIT_API_SECRET": secret or double.api_secret, KEY_ENV: "sk-test-double", **double_egress_env(KEY_ENV)}


@pytest.fixture
def lk_settings(livekit_double: LiveKitDoubleProcess, settings: Any) -> LiveKitDoubleProcess:
    """This test process (the API) configured for the double, as the web process would be."""
    settings.LIVEKIT_URL, settings.LIVEKIT_API_KEY = livekit_double.url, livekit_double.api_key
    settings.LIVEKIT_API_SECRET = livekit_double.api_secret
    return livekit_double


def start_worker(fleet: Fleet, double: LiveKitDoubleProcess, *, concurrency: int = 4, **env: Any) -> WorkerProcess:
    (worker,) = fleet.start("lk", concurrency=concurrency, **{**livekit_env(double), **{k: str(v) for k, v in env.items()}})
    return worker


def dispatch(client: APIClient, *, room: str, caller: str = "caller", **extra: Any) -> str:
    response = client.post("/api/v1/jobs/", {"agent": "concierge", "room": room, "participant_identity": caller,
                                             "transport": "livekit", **extra}, format="json")
    assert response.status_code == 201, response.content
    return str(response.json()["job_id"])


def session_of(job_id: str, timeout: float = 30.0) -> AgentSession:
    return wait_for(lambda: AgentSession.objects.filter(job_id=job_id).first(), timeout=timeout, what="the job's session")


def events(session_id: str, type_: str) -> list[dict[str, Any]]:
    return list(SessionEvent.objects.filter(session_id=session_id, type=type_).order_by("seq").values_list("data", flat=True))


def wait_event(session_id: str, type_: str, *, timeout: float = 30.0, where: Any = None) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next((e for e in events(session_id, type_) if where is None or where(e)), None)

    return wait_for(found, timeout=timeout, interval=0.1, what=f"a {type_} event")


def agent_in_room(double: LiveKitDoubleProcess, room: str, job_id: str, timeout: float = 30.0) -> None:
    def joined() -> bool:
        info = double.client.room(room)
        return bool(info and any(p["identity"] == f"agent-{job_id}" and p["tracks"] for p in info["participants"]))

    wait_for(joined, timeout=timeout, interval=0.1, what="the agent joined the room and published its voice")


# --- what the caller received ---------------------------------------------------------------------
def agent_track(received: dict[str, Any]) -> dict[str, Any]:
    assert received["tracks"], "the caller received no track from the agent"
    return next(iter(received["tracks"].values()))


def loud_times(track: dict[str, Any], threshold: float = 1000.0) -> list[float]:
    return [t for t, rms in zip(track["times"], track["rms"]) if rms > threshold]


def wait_reply_heard(double: LiveKitDoubleProcess, room: str, caller: str, *, after: float = 0.0,
                     quiet_s: float = 1.0, timeout: float = 40.0) -> dict[str, Any]:
    """Wait until the caller has heard agent audio (after `after`) followed by `quiet_s` of quiet."""
    def done() -> dict[str, Any] | None:
        received = double.client.caller(room, caller)
        if not received["tracks"]:
            return None
        track = agent_track(received)
        loud = [t for t in loud_times(track) if t > after]
        if loud and track["times"] and track["times"][-1] - loud[-1] >= quiet_s:
            return received
        return None

    return wait_for(done, timeout=timeout, interval=0.2, what="the caller to hear the agent's reply")


def heard_pcm(double: LiveKitDoubleProcess, room: str, caller: str) -> tuple[np.ndarray, list[float], list[float]]:
    track = agent_track(double.client.caller(room, caller, audio=True))
    return np.frombuffer(base64.b64decode(track["pcm16_base64"]), dtype=np.int16), track["times"], track["rms"]


def dominant_hz(pcm: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[int(np.argmax(spectrum))])


def loud_segment(pcm: np.ndarray, rms: list[float], threshold: float = 1000.0) -> np.ndarray:
    """The samples of the frames above the threshold (frames are 10 or 20 ms; sized from the count)."""
    per_frame = len(pcm) // max(1, len(rms))
    chunks = [pcm[i * per_frame:(i + 1) * per_frame] for i, level in enumerate(rms) if level > threshold]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
