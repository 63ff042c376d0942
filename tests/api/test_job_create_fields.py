"""JobCreateSerializer's fields are copied per instance more cheaply than DRF's deep copy
(controlplane.api_base.declared_fields_copy); each instance must still have fields of its own."""
from __future__ import annotations

from workers.serializers import JobCreateSerializer


def test_every_instance_binds_fields_of_its_own_and_the_declared_ones_stay_unbound() -> None:
    a, b = JobCreateSerializer(data={}), JobCreateSerializer(data={})
    for name, declared in JobCreateSerializer._declared_fields.items():
        assert a.fields[name] is not b.fields[name] and a.fields[name] is not declared
        assert a.fields[name].parent is a and b.fields[name].parent is b
        assert getattr(declared, "parent", None) is None
    # the dict field's child is its own too (deep-copied, as DRF does)
    assert a.fields["metadata"].child is not b.fields["metadata"].child
    assert a.fields["metadata"].child.parent is a.fields["metadata"]


def test_changing_one_instance_s_field_leaves_the_others_alone() -> None:
    a = JobCreateSerializer(data={"agent": "a", "room": "r", "participant_identity": ""})
    a.fields["participant_identity"].allow_blank = False
    assert not a.is_valid() and set(a.errors) == {"participant_identity"}
    b = JobCreateSerializer(data={"agent": "a", "room": "r", "participant_identity": ""})
    assert b.is_valid(), b.errors


def test_the_rules_are_the_generic_ones() -> None:
    ok = JobCreateSerializer(data={"agent": "a", "room": "r", "transport": "local", "metadata": {"k": [1]}})
    assert ok.is_valid(), ok.errors
    assert ok.validated_data == {"job_type": "agent_session", "agent": "a", "room": "r", "metadata": {"k": [1]}, "priority": 5,
                                 "participant_identity": "", "transport": "local"}
    bad = JobCreateSerializer(data={"agent": "x" * 256, "room": "r", "job_type": "nope", "transport": "carrier-pigeon",
                                    "priority": 0, "metadata": [], "participant_identity": 3.5j})
    assert not bad.is_valid()
    assert set(bad.errors) == {"agent", "job_type", "transport", "priority", "metadata", "participant_identity"}
