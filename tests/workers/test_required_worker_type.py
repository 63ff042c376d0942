"""Which worker type serves a job, from the agent's config snapshot."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from workers.models import Worker
from workers.options import WorkerOptions
from workers.worker_types import WorkerType, required_worker_type, worker_serves

VOICE = {"llm_config": {"provider": "openai"}, "stt_config": {"provider": "openai"}, "tts_config": {"provider": "openai"}}
CASES = [
    ({"llm_config": {"provider": "openai_realtime", "model": "gpt-realtime"}}, "multimodal_agent"),
    ({**VOICE, "llm_config": {"provider": "openai_realtime"}}, "multimodal_agent"),
    (VOICE, "voice_agent"),
    ({**VOICE, "stt_config": {}}, "voice_agent"),  # speech out only
    ({"llm_config": {"provider": "openai"}, "stt_config": {}, "tts_config": {"provider": "none"}}, "text_agent"),
    ({"llm_config": {}}, "text_agent"),
    ({}, "text_agent"),
    (None, "text_agent"),
    ({**VOICE, "metadata": {"entry_point": "myapp.agents:run"}}, "custom"),
]


@pytest.mark.parametrize("snapshot,expected", CASES)
def test_it_maps_a_config_snapshot_to_the_worker_type_that_serves_it(snapshot, expected):
    assert required_worker_type(snapshot) == expected


def test_a_realtime_job_is_served_only_by_a_multimodal_worker():
    realtime = required_worker_type({"llm_config": {"provider": "openai_realtime"}})
    assert worker_serves(SimpleNamespace(worker_type="multimodal_agent", serves=[]), realtime)
    assert not worker_serves(SimpleNamespace(worker_type="voice_agent", serves=[]), realtime)
    assert not worker_serves(SimpleNamespace(worker_type="text_agent", serves=[]), realtime)


def test_the_types_a_job_needs_are_the_fleets():
    assert {required_worker_type(snapshot) for snapshot, _ in CASES} == set(WorkerType)
    assert [value for value, _ in Worker._meta.get_field("worker_type").choices] == list(WorkerType)
    assert list(WorkerOptions.model_fields["worker_type"].annotation) == list(WorkerType)
