"""A job assigned in the dispatch transaction keeps its timestamps in order."""
from __future__ import annotations

from typing import Any

from workers.dispatch import job_dispatch
from workers.models import Job, JobStatus


def test_a_job_assigned_at_dispatch_is_not_assigned_before_it_was_created(active_agent: Any, online_worker: Any) -> None:
    online_worker("w1@test", capacity=100)
    for i in range(20):  # the two clock readings used to differ by microseconds, one way
        job = Job.objects.get(pk=job_dispatch(agent_id="support", room=f"room-{i}").job_id)
        assert job.status == JobStatus.ASSIGNED
        assert job.assigned_at is not None and job.assigned_at >= job.created_at
        job.full_clean()  # the model's own chronology rule
