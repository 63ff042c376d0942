"""The state machine's conditional UPDATE, written once per shape, does what the queryset
`filter(pk=…, <state>__in=…, **where).update(…)` did: the same rows win, the same values land,
one statement; shapes it does not write (expressions) still go through the ORM."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Agent
from sessions.models import AgentSession, SessionStatus
from sessions.services import SESSION_MACHINE
from workers.models import Job, JobStatus, Worker
from workers.services import JOB_MACHINE

pytestmark = pytest.mark.django_db(transaction=True)


def job_row(**fields: Any) -> Job:
    return Job.objects.create(room_name="r", **fields)


def test_a_won_transition_is_one_update_that_writes_its_values(online_worker: Any) -> None:
    worker = online_worker("w1@host")
    job = job_row(status=JobStatus.RUNNING, assigned_worker=worker, lease_expires_at=timezone.now())
    done_at = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        won = JOB_MACHINE.try_transition(Job(pk=job.pk), JobStatus.COMPLETED, from_=(JobStatus.RUNNING,),
                                         where={"assigned_worker_id": worker.pk}, completed_at=done_at,
                                         lease_expires_at=None, failure_reason="", metadata={"result": [1, "two"]})
    assert won
    assert len(queries.captured_queries) == 1 and queries.captured_queries[0]["sql"].startswith("UPDATE")
    stored = Job.objects.get(pk=job.pk)
    assert (stored.status, stored.completed_at, stored.lease_expires_at, stored.metadata) == (
        JobStatus.COMPLETED, done_at, None, {"result": [1, "two"]})


def test_a_row_in_another_state_or_held_by_another_worker_does_not_move(online_worker: Any) -> None:
    mine, other = online_worker("w1@host"), online_worker("w2@host")
    job = job_row(status=JobStatus.RUNNING, assigned_worker=other)
    assert not JOB_MACHINE.try_transition(Job(pk=job.pk), JobStatus.COMPLETED, where={"assigned_worker_id": mine.pk})
    pending = job_row(status=JobStatus.PENDING)
    assert not JOB_MACHINE.try_transition(Job(pk=pending.pk), JobStatus.COMPLETED)  # pending → completed: not a rule
    assert not JOB_MACHINE.try_transition(Job(pk=job.pk), JobStatus.FAILED, from_=(JobStatus.ASSIGNED,))
    assert not JOB_MACHINE.try_transition(Job(pk="job_missing"), JobStatus.CANCELLED)
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    assert Job.objects.get(pk=pending.pk).status == JobStatus.PENDING


def test_an_equality_with_none_means_is_null_as_in_a_filter(online_worker: Any) -> None:
    unassigned = job_row(status=JobStatus.PENDING)
    assigned = job_row(status=JobStatus.PENDING, assigned_worker=online_worker("w1@host"))
    for job in (unassigned, assigned):
        JOB_MACHINE.try_transition(Job(pk=job.pk), JobStatus.CANCELLED, where={"assigned_worker_id": None})
    assert Job.objects.get(pk=unassigned.pk).status == JobStatus.CANCELLED
    assert Job.objects.get(pk=assigned.pk).status == JobStatus.PENDING


def test_isnull_conditions_test_the_column(active_agent: Agent) -> None:
    job = job_row(agent=active_agent, status=JobStatus.RUNNING)
    open_row = AgentSession.objects.create(job=job, agent=active_agent, agent_version=1, room_id="r",
                                           status=SessionStatus.ACTIVE)
    ended = AgentSession.objects.create(agent=active_agent, agent_version=1, room_id="r", status=SessionStatus.DISCONNECTED,
                                        ended_at=timezone.now() - timedelta(seconds=5))
    for row in (open_row, ended):
        SESSION_MACHINE.try_transition(AgentSession(pk=row.pk), SessionStatus.ERROR, where={"ended_at__isnull": True},
                                       error="boom")
    assert AgentSession.objects.get(pk=open_row.pk).status == SessionStatus.ERROR
    assert AgentSession.objects.get(pk=ended.pk).status == SessionStatus.DISCONNECTED
    assert not SESSION_MACHINE.try_transition(AgentSession(pk=ended.pk), SessionStatus.CONNECTED,
                                              where={"ended_at__isnull": True})
    assert SESSION_MACHINE.try_transition(AgentSession(pk=ended.pk), SessionStatus.CONNECTED,
                                          where={"ended_at__isnull": False}, ended_at=None)
    assert AgentSession.objects.get(pk=ended.pk).ended_at is None


def test_an_expression_or_a_model_instance_goes_through_the_orm(online_worker: Any) -> None:
    worker = online_worker("w1@host")
    job = job_row(status=JobStatus.ASSIGNED, assigned_worker=worker, attempts=2)
    moved = Job(pk=job.pk)
    assert JOB_MACHINE.try_transition(moved, JobStatus.PENDING, attempts=F("attempts") + 1, assigned_worker=None)
    stored = Job.objects.get(pk=job.pk)
    assert (stored.status, stored.attempts, stored.assigned_worker_id) == (JobStatus.PENDING, 3, None)
    assert JOB_MACHINE.try_transition(moved, JobStatus.ASSIGNED, assigned_worker=Worker.objects.get(pk=worker.pk))
    assert Job.objects.get(pk=job.pk).assigned_worker_id == worker.pk
