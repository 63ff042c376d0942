"""POST /jobs/'s body validated without DRF's field machinery (controlplane.plain_input) gives
what DRF's own validation gives: the same validated data, value for value and type for type,
and for anything not plainly valid DRF's own errors."""
from __future__ import annotations

from typing import Any

import pytest

from controlplane import plain_input
from workers.serializers import JobCreateSerializer

VALID = [
    {"agent": "a", "room": "r"},
    {"agent": "a", "room": "r", "transport": "local", "metadata": {"echo_end_after_s": 0}},
    {"agent": "a", "room": "r", "transport": None, "priority": 1, "participant_identity": "", "job_type": "agent_session"},
    {"agent": "a", "room": "r", "priority": 10, "metadata": {"k": [1, {"x": None}], "n": None}},
    {"agent": None, "room": "tool", "job_type": "tool_execution", "metadata": {"tool": "t", "arguments": {}}},
    {"agent": "a", "room": "r", "participant_identity": "   "},  # blank allowed: ""
    {"agent": "a" * 255, "room": "r" * 255},
    {"job_type": "tool_execution", "metadata": {"tool": "t"}},  # room becomes its label
    {"agent": " a ", "room": "r\t"},  # trimmed, as DRF trims
]
NOT_PLAIN = [  # converted or refused by DRF: the plain path must leave them to it
    {"agent": "a", "room": " "},  # blank, not allowed
    {"agent": "a", "room": ""},
    {"agent": "a", "room": None},
    {"agent": "a", "room": 5},  # a number as text
    {"agent": "a", "room": "r", "priority": "5"},
    {"agent": "a", "room": "r", "priority": True},
    {"agent": "a", "room": "r", "priority": 5.0},
    {"agent": "a", "room": "r", "priority": 0},
    {"agent": "a", "room": "r", "priority": 11},
    {"agent": "a", "room": "r", "priority": None},
    {"agent": "a", "room": "r", "priority": 10**200},
    {"agent": "x" * 256, "room": "r"},
    {"agent": "a\x00", "room": "r"},
    {"agent": "a\ud800", "room": "r"},
    {"agent": "ä", "room": "r"},  # non-ASCII: DRF's path (correct, only slower)
    {"agent": "a", "room": "r", "job_type": "nope"},
    {"agent": "a", "room": "r", "job_type": None},
    {"agent": "a", "room": "r", "transport": "carrier-pigeon"},
    {"agent": "a", "room": "r", "transport": ""},
    {"agent": "a", "room": "r", "metadata": []},
    {"agent": "a", "room": "r", "metadata": None},
    {"agent": "a", "room": "r", "metadata": {"k": float("nan")}},
    {"agent": "a", "room": "r", "metadata": {"k": "\x00"}},
    {"agent": "a", "room": "r", "surprise": 1},  # unknown field
    [],
    "text",
    None,
]
REFUSED_BY_VALIDATE = [  # plain values, refused by JobCreateSerializer.validate: DRF's errors all the same
    {"agent": "a", "room": "r", "metadata": {"delete_room_on_end": "yes"}},
    {"room": "r"},  # agent required for agent_session
    {"job_type": "audio_processing", "metadata": {}},
]


def _drf(data: Any) -> JobCreateSerializer:
    serializer = JobCreateSerializer(data=data)
    serializer.fields  # built: the plain path stands aside, DRF validates
    serializer.is_valid()
    return serializer


def _described(serializer: JobCreateSerializer) -> Any:
    if serializer.errors:
        return "errors", serializer.errors
    return "valid", [(k, v, type(v)) for k, v in serializer.validated_data.items()]


@pytest.mark.parametrize("data", VALID + NOT_PLAIN + REFUSED_BY_VALIDATE, ids=repr)
def test_the_result_is_drf_s(data: Any) -> None:
    plain = JobCreateSerializer(data=data)
    plain.is_valid()
    assert _described(plain) == _described(_drf(data))


@pytest.mark.parametrize("data", VALID, ids=repr)
def test_plainly_valid_input_is_validated_without_building_fields(data: Any) -> None:
    serializer = JobCreateSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    assert "fields" not in serializer.__dict__


@pytest.mark.parametrize("data", NOT_PLAIN, ids=repr)
def test_input_that_is_not_plain_is_left_to_drf(data: Any) -> None:
    assert plain_input.plain_values(JobCreateSerializer, data) is None


def test_metadata_is_a_dict_of_its_own() -> None:
    metadata = {"k": 1}
    serializer = JobCreateSerializer(data={"agent": "a", "room": "r", "metadata": metadata})
    assert serializer.is_valid()
    assert serializer.validated_data["metadata"] == metadata and serializer.validated_data["metadata"] is not metadata
    defaults = [JobCreateSerializer(data={"agent": "a", "room": "r"}) for _ in range(2)]
    assert all(s.is_valid() for s in defaults)
    assert defaults[0].validated_data["metadata"] is not defaults[1].validated_data["metadata"]
