"""Two workers race for one transition: the conditional UPDATE lets exactly one win.

Run on PostgreSQL by the test command (DATABASE_URL); each thread has its own connection.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from agents import services as agent_services
from agents.models import Agent
from controlplane.errors import IllegalTransition
from workers import services as job_services
from workers.models import Job, JobStatus, Worker

pytestmark = pytest.mark.django_db(transaction=True)


def race(contenders: int, attempt: Callable[[int], Any]) -> tuple[int, int]:
    barrier = threading.Barrier(contenders)
    outcomes: list[str] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            attempt(i)
            outcomes.append("won")
        except IllegalTransition:
            outcomes.append("lost")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes.count("won"), outcomes.count("lost")


@pytest.mark.parametrize("round_", range(5))
def test_two_workers_assigning_one_job_only_one_wins(active_agent: Agent, round_: int) -> None:
    for i in range(2):
        Worker.objects.create(worker_id=f"celery@w{i}", hostname=f"w{i}", queue=f"celery@w{i}.dq2")
    job = Job.objects.create(agent=active_agent, room_name="room")

    def assign(i: int) -> None:
        job_services.job_assign(job=Job.objects.get(pk=job.pk), worker_id=f"celery@w{i}")

    assert race(2, assign) == (1, 1)
    assert Job.objects.get(pk=job.pk).status == JobStatus.ASSIGNED


def test_many_cancels_of_one_job_only_one_wins(active_agent: Agent) -> None:
    job = Job.objects.create(agent=active_agent, room_name="room", status=JobStatus.RUNNING)
    assert race(6, lambda i: job_services.job_cancel(job=Job.objects.get(pk=job.pk))) == (1, 5)


def test_two_deactivations_of_one_agent_only_one_wins(active_agent: Agent) -> None:
    assert race(2, lambda i: agent_services.agent_deactivate(agent=Agent.objects.get(pk=active_agent.pk))) == (1, 1)
