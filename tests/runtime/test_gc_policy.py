"""runtime.gc_policy: the worker's collector settings, and the pause recorder the benches read."""
from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from runtime.gc_policy import YOUNG_THRESHOLD, GCPauses, tune_for_live_audio


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tuning_freezes_what_exists_and_raises_the_young_threshold(restored_gc: None) -> None:
    survivor = [object()]  # tracked and alive: frozen by the tuning
    tune_for_live_audio()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD > 700
    assert not any(o is survivor for o in gc.get_objects())  # out of the generations the collector walks


def test_the_recorder_counts_each_collection_in_its_generation() -> None:
    pauses = GCPauses().install()
    try:
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
    finally:
        pauses.uninstall()
    gc.collect(2)  # after uninstall: not counted
    stats = pauses.as_dict()
    assert stats["gen0"]["collections"] >= 1  # an automatic young collection may add to it
    assert stats["gen2"]["collections"] == 2
    assert stats["gen2"]["total_ms"] >= stats["gen2"]["max_ms"] > 0
    assert stats["gen2"]["cpu_ms"] >= 0


def test_a_stop_without_its_start_is_ignored() -> None:
    pauses = GCPauses()
    pauses._callback("stop", {"generation": 2, "collected": 0, "uncollectable": 0})
    assert pauses.as_dict()["gen2"]["collections"] == 0
