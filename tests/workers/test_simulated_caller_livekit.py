"""The LiveKit simulated caller's parts that need no server: its join token, its microphone
frames, which received frames count as the agent's sound, and the command's credentials."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from livekit import api

from workers.simulated_caller import SEGMENT_GAP_S
from workers.simulated_caller_livekit import LiveKitCallerTransport, SpeechGate, caller_token, stereo

SECRET = "a-livekit-secret-long-enough-for-hs256-0123"


def test_the_callers_token_joins_its_room_only_with_a_microphone() -> None:
    claims = api.TokenVerifier("APIkey", SECRET).verify(
        caller_token(api_key="APIkey", api_secret=SECRET, room="loadtest-ab12-0", identity="loadtest-caller"))
    assert claims.identity == "loadtest-caller"
    video = claims.video
    assert video.room_join and video.room == "loadtest-ab12-0" and video.can_publish and video.can_subscribe
    assert video.can_publish_sources == ["microphone"]
    assert not (video.room_create or video.room_admin or video.room_list or video.room_record or video.agent)


def test_microphone_frames_are_stereo_with_both_channels_alike() -> None:
    mono = np.array([1, -2, 300, -32768], dtype="<i2")
    out = np.frombuffer(stereo(mono.tobytes()), dtype="<i2").reshape(-1, 2)
    assert out[:, 0].tolist() == mono.tolist() and out[:, 1].tolist() == mono.tolist()


def test_the_gate_passes_the_agents_sound_and_its_short_pauses_not_the_receivers_silence() -> None:
    gate = SpeechGate()
    silence = np.zeros(480, dtype="<i2").tobytes()
    sound = (np.sin(np.arange(480) / 3) * 3000).astype("<i2").tobytes()
    assert not gate.passes(silence, 0.0)  # before the agent spoke: the receiver's own silence
    assert gate.passes(sound, 1.0)
    assert gate.passes(silence, 1.0 + SEGMENT_GAP_S / 2)  # a pause inside the reply
    assert not gate.passes(silence, 1.0 + SEGMENT_GAP_S * 1.5)  # the reply is over
    assert gate.passes(sound, 3.0)


def test_the_transport_never_shows_its_secret() -> None:
    transport = LiveKitCallerTransport(url="ws://10.0.0.2:7880", api_key="APIkey", api_secret=SECRET)
    assert SECRET not in repr(transport) and SECRET not in str(transport)


def test_loadtest_over_livekit_names_the_missing_connection_settings(settings: Any) -> None:
    settings.LIVEKIT_URL, settings.LIVEKIT_API_KEY, settings.LIVEKIT_API_SECRET = "ws://10.0.0.2:7880", "", ""
    with pytest.raises(CommandError, match=r"--transport livekit needs --livekit-api-key, --livekit-api-secret"):
        call_command("loadtest", "demo", "--transport", "livekit", "--calls", "1")
