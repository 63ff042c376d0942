"""Job.status: pending → assigned → running → completed | failed | cancelled."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from agents.models import Agent
from controlplane.errors import IllegalTransition
from workers import services
from workers.models import Job, JobStatus, Worker

pytestmark = pytest.mark.django_db
J = JobStatus


def job_in(status: str, agent: Agent) -> Job:
    return Job.objects.create(agent=agent, room_name="room-1", status=status)


ACTIONS = {
    "assign": lambda job, w: services.job_assign(job=job, worker_id=w.worker_id),
    "start": lambda job, w: services.job_start(job=job),
    "complete": lambda job, w: services.job_complete(job=job),
    "fail": lambda job, w: services.job_fail(job=job, reason="boom"),
    "cancel": lambda job, w: services.job_cancel(job=job),
    "requeue": lambda job, w: services.job_requeue(job=job, reason="worker lost"),
}
LEGAL = [
    (J.PENDING, "assign", J.ASSIGNED),
    (J.ASSIGNED, "start", J.RUNNING),
    (J.RUNNING, "complete", J.COMPLETED),
    (J.RUNNING, "fail", J.FAILED),
    (J.ASSIGNED, "fail", J.FAILED),
    (J.PENDING, "fail", J.FAILED),
    (J.PENDING, "cancel", J.CANCELLED),
    (J.ASSIGNED, "cancel", J.CANCELLED),
    (J.RUNNING, "cancel", J.CANCELLED),
    (J.ASSIGNED, "requeue", J.PENDING),
    (J.RUNNING, "requeue", J.PENDING),
]


@pytest.mark.parametrize(("start", "action", "end"), LEGAL)
def test_legal_transitions(active_agent: Agent, worker: Worker, start: str, action: str, end: str) -> None:
    job = job_in(start, active_agent)
    ACTIONS[action](job, worker)
    assert Job.objects.get(pk=job.pk).status == end


ILLEGAL = [
    (start, action)
    for start in J.values
    for action in ACTIONS
    if not any(s == start and a == action for s, a, _ in LEGAL)
]


@pytest.mark.parametrize(("start", "action"), ILLEGAL)
def test_illegal_transitions_raise_and_change_nothing(active_agent: Agent, worker: Worker, start: str, action: str) -> None:
    job = job_in(start, active_agent)
    with pytest.raises(IllegalTransition):
        ACTIONS[action](job, worker)
    assert Job.objects.get(pk=job.pk).status == start


@pytest.mark.parametrize("priority", [0, 11])
def test_priority_must_be_1_to_10(active_agent: Agent, priority: int) -> None:
    with pytest.raises(ValidationError) as info:
        Job(agent=active_agent, room_name="r", priority=priority).full_clean()
    assert "priority" in info.value.message_dict


@pytest.mark.parametrize("priority", [1, 10])
def test_priority_bounds_are_accepted(active_agent: Agent, priority: int) -> None:
    Job(agent=active_agent, room_name="r", priority=priority).full_clean()


def test_job_timestamps_must_be_chronological(active_agent: Agent) -> None:
    now = timezone.now()
    job = Job(agent=active_agent, room_name="r", created_at=now, assigned_at=now, started_at=now - timedelta(seconds=5))
    with pytest.raises(ValidationError) as info:
        job.full_clean()
    assert "started_at" in info.value.message_dict


def test_a_session_job_needs_a_room(active_agent: Agent) -> None:
    with pytest.raises(ValidationError) as info:
        Job(agent=active_agent, room_name="  ").full_clean()
    assert "room_name" in info.value.message_dict
