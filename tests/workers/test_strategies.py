from __future__ import annotations

import pytest

from workers.strategies import Candidate, RoundRobinState, choose, least_connections, load_based, round_robin, weighted_round_robin


def c(worker_id: str, *, capacity: int = 10, active: int = 0, load: float = 0.0, weight: int = 1) -> Candidate:
    return Candidate(worker_id=worker_id, capacity=capacity, active=active, load=load, weight=weight)


def test_round_robin_rotates_in_worker_order() -> None:
    state = RoundRobinState()
    pool = [c("w2"), c("w1"), c("w3")]
    assert [round_robin(pool, state).worker_id for _ in range(5)] == ["w1", "w2", "w3", "w1", "w2"]


def test_round_robin_skips_full_workers() -> None:
    state = RoundRobinState()
    pool = [c("w1"), c("w2", capacity=2, active=2), c("w3")]
    assert [round_robin(pool, state).worker_id for _ in range(3)] == ["w1", "w3", "w1"]


def test_least_connections_picks_fewest_active_jobs() -> None:
    assert least_connections([c("w1", active=3), c("w2", active=1), c("w3", active=2)]).worker_id == "w2"


def test_least_connections_breaks_ties_by_free_capacity() -> None:
    assert least_connections([c("w1", active=1, capacity=2), c("w2", active=1, capacity=8)]).worker_id == "w2"


def test_weighted_round_robin_follows_weights_smoothly() -> None:
    state = RoundRobinState()
    pool = [c("a", weight=3), c("b", weight=1)]
    picks = [weighted_round_robin(pool, state).worker_id for _ in range(8)]
    assert picks.count("a") == 6 and picks.count("b") == 2
    assert picks[:4] == ["a", "a", "b", "a"]  # smooth: b is not starved to the end


def test_load_based_picks_the_least_loaded_worker() -> None:
    assert load_based([c("w1", load=0.7), c("w2", load=0.2), c("w3", load=0.5)]).worker_id == "w2"


def test_load_based_counts_slot_utilisation_when_reported_load_is_low() -> None:
    # w1 reports an idle CPU but 9 of 10 slots are taken
    assert load_based([c("w1", load=0.0, active=9), c("w2", load=0.3, active=1)]).worker_id == "w2"


@pytest.mark.parametrize("name", ["round_robin", "least_connections", "weighted_round_robin", "load_based"])
def test_every_strategy_returns_none_without_capacity(name: str) -> None:
    assert choose(name, [c("w1", capacity=1, active=1)]) is None
    assert choose(name, []) is None


def test_an_unknown_strategy_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="fastest"):
        choose("fastest", [c("w1")])
