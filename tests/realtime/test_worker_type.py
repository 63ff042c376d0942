"""Which worker type serves a job, from the agent's config snapshot."""
from __future__ import annotations

import pytest

from sessions.runtime.realtime.worker_type import WORKER_TYPES, required_worker_type, serves
from workers.options import WORKER_TYPES as FLEET_WORKER_TYPES

VOICE = {"llm_config": {"provider": "openai"}, "stt_config": {"provider": "openai"}, "tts_config": {"provider": "openai"}}


@pytest.mark.parametrize("snapshot,expected", [
    ({"llm_config": {"provider": "openai_realtime", "model": "gpt-realtime"}}, "multimodal_agent"),
    ({**VOICE, "llm_config": {"provider": "openai_realtime"}}, "multimodal_agent"),
    (VOICE, "voice_agent"),
    ({**VOICE, "stt_config": {}}, "voice_agent"),  # speech out only
    ({"llm_config": {"provider": "openai"}, "stt_config": {}, "tts_config": {"provider": "none"}}, "text_agent"),
    ({"llm_config": {}}, "text_agent"),
    ({}, "text_agent"),
    (None, "text_agent"),
    ({**VOICE, "metadata": {"entry_point": "myapp.agents:run"}}, "custom"),
])
def test_it_maps_a_config_snapshot_to_the_worker_type_that_serves_it(snapshot, expected):
    assert required_worker_type(snapshot) == expected


def test_a_worker_only_serves_its_own_type():
    realtime = {"llm_config": {"provider": "openai_realtime"}}
    assert serves("multimodal_agent", realtime)
    assert not serves("voice_agent", realtime) and not serves("text_agent", realtime)


def test_the_types_are_the_fleets():
    assert WORKER_TYPES == FLEET_WORKER_TYPES
