"""JobSerializer writes its fields out by hand (the dispatch path renders one per POST): the
output must stay what DRF's generic ModelSerializer rendering of the same declared fields gives."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework import serializers

from agents.models import Agent
from sessions.models import AgentSession
from workers.dispatch import job_dispatch
from workers.models import Job, JobStatus, JobType
from workers.serializers import JobSerializer

pytestmark = pytest.mark.django_db


def generic(job: Job) -> dict[str, Any]:
    """DRF's own field-by-field rendering of JobSerializer's declared fields."""
    return dict(serializers.ModelSerializer.to_representation(JobSerializer(job), job))


def test_a_pending_job_renders_as_the_generic_serializer_does(active_agent: Agent) -> None:
    job = job_dispatch(agent_id=active_agent.agent_id, room="room-1", metadata={"caller": "+15550100", "n": [1, 2]},
                       priority=2, participant_identity="caller-1", idempotency_key="k-1")
    data = JobSerializer(job).data
    assert data == generic(job)
    assert data["status"] == "pending" and data["session_id"] is None and data["created_at"].endswith("Z")


def test_an_assigned_job_with_a_session_renders_as_the_generic_serializer_does(active_agent: Agent, worker: Any) -> None:
    job = job_dispatch(agent_id=active_agent.agent_id, room="room-2")
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, assigned_worker=worker, assigned_at=now,
                                         started_at=now + timedelta(seconds=1), completed_at=now + timedelta(seconds=2),
                                         attempts=2, failure_reason="lost")
    AgentSession.objects.create(job=job, agent=active_agent, agent_version=1, room_id="room-2")
    stored = Job.objects.select_related("agent", "session").get(pk=job.pk)
    data = JobSerializer(stored).data
    assert data == generic(stored)
    assert data["assigned_worker"] == worker.worker_id and data["session_id"] == stored.session.session_id
    assert data["completed_at"] is not None and data["attempts"] == 2


def test_a_job_without_an_agent_renders_as_the_generic_serializer_does(db: Any) -> None:
    job = job_dispatch(agent_id=None, room="tool-run", job_type=JobType.TOOL_EXECUTION,
                       metadata={"tool": "lookup", "arguments": {"q": 1}})
    stored = Job.objects.get(pk=job.pk)
    assert JobSerializer(stored).data == generic(stored)
    assert JobSerializer(stored).data["agent"] is None


def test_a_list_renders_each_job_as_the_generic_serializer_does(active_agent: Agent) -> None:
    for i in range(3):
        job_dispatch(agent_id=active_agent.agent_id, room=f"room-{i}")
    jobs = list(Job.objects.select_related("agent", "session").order_by("created_at"))
    assert JobSerializer(jobs, many=True).data == [generic(job) for job in jobs]
