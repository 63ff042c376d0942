"""Fleet events published together go out as one broadcaster hand-over, in order, even when the
block raises; outside such a block each event is its own hand-over."""
from __future__ import annotations

from typing import Any

import pytest

from controlplane import fleet_events
from controlplane.fleet_events import FLEET_GROUP, fleet_events_together, publish_fleet_event


@pytest.fixture
def handed_over(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[str, dict[str, Any]]]]:
    sends: list[list[tuple[str, dict[str, Any]]]] = []
    monkeypatch.setattr(fleet_events.broadcaster, "send", lambda messages: sends.append(list(messages)))
    return sends


def ids(send: list[tuple[str, dict[str, Any]]]) -> list[str]:
    assert all(group == FLEET_GROUP and message["type"] == "fleet.event" for group, message in send)
    return [message["data"]["job_id"] for _, message in send]


def test_events_published_together_are_one_hand_over_in_order(handed_over: list[Any]) -> None:
    publish_fleet_event("job", {"job_id": "a", "status": "running"})
    with fleet_events_together():
        publish_fleet_event("job", {"job_id": "b", "status": "completed"})
        with fleet_events_together():  # nested: the outer block sends
            publish_fleet_event("job", {"job_id": "c", "status": "assigned"})
        assert len(handed_over) == 1  # nothing of the block went out yet
        publish_fleet_event("worker", {"job_id": "d", "status": "online"})
    publish_fleet_event("job", {"job_id": "e", "status": "running"})
    assert [ids(send) for send in handed_over] == [["a"], ["b", "c", "d"], ["e"]]


def test_a_block_that_raises_still_sends_what_it_published(handed_over: list[Any]) -> None:
    with pytest.raises(RuntimeError), fleet_events_together():
        publish_fleet_event("job", {"job_id": "a", "status": "completed"})
        raise RuntimeError("after the change was made")
    with fleet_events_together():
        pass  # nothing published: nothing handed over
    assert [ids(send) for send in handed_over] == [["a"]]
