from __future__ import annotations

from typing import Any

from workers.autoscale import autoscale_apply, fleet_capacity, per_worker_targets
from workers.dispatch import job_dispatch
from workers.models import Worker


def test_desired_capacity_follows_queue_depth_and_active_jobs(active_agent: Any, online_worker: Any, busy: Any) -> None:
    worker = online_worker("w1@unit", capacity=4)
    busy(worker, 4, active_agent)  # full
    for i in range(2):
        job_dispatch(agent_id=active_agent.agent_id, room=f"wait{i}", transport="local")  # no slot: pending
    figures = fleet_capacity()
    assert (figures["capacity"], figures["active_jobs"], figures["pending_jobs"]) == (4, 4, 2)
    assert figures["desired_capacity"] == 8  # 6 in demand at 75 % target utilisation


def test_a_busy_machine_is_not_asked_to_grow(active_agent: Any, online_worker: Any, busy: Any) -> None:
    busy(online_worker("w1@unit", capacity=4, load=0.95), 4, active_agent)
    job_dispatch(agent_id=active_agent.agent_id, room="wait", transport="local")
    assert fleet_capacity()["desired_capacity"] == 4


def test_the_desired_capacity_is_shared_between_workers(online_worker: Any) -> None:
    workers = [online_worker("w1@unit"), online_worker("w2@unit")]
    assert per_worker_targets(9, workers) == {"w1@unit": 5, "w2@unit": 5}
    assert per_worker_targets(0, workers) == {"w1@unit": 1, "w2@unit": 1}


def test_autoscale_does_nothing_unless_enabled(online_worker: Any, settings: Any) -> None:
    settings.AUTOSCALE = False
    online_worker("w1@unit", capacity=10)
    assert "changes" not in autoscale_apply()
    assert Worker.objects.get().capacity == 10
