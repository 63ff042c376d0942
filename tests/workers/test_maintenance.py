"""The maintenance loop (`manage.py supervise`): reaping and assignment with no worker and no broker."""
from __future__ import annotations

import socket
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from workers.maintenance import Maintenance
from workers.models import Job, JobStatus, Worker, WorkerStatus

pytestmark = pytest.mark.django_db(transaction=True)  # the loop closes stale connections, as in production


@pytest.fixture
def dead_worker_with_jobs(online_worker: Any, busy: Any, active_agent: Any) -> Worker:
    worker = online_worker("dead@host")
    busy(worker, 3, active_agent)
    Worker.objects.filter(pk=worker.pk).update(last_heartbeat_at=timezone.now() - timedelta(seconds=120))
    Job.objects.filter(assigned_worker=worker).update(lease_expires_at=timezone.now() - timedelta(seconds=60), attempts=1)
    return worker


def test_supervise_once_takes_back_a_dead_workers_jobs(dead_worker_with_jobs: Worker) -> None:
    out = StringIO()
    call_command("supervise", "--once", stdout=out)
    assert Worker.objects.get(pk=dead_worker_with_jobs.pk).status == WorkerStatus.OFFLINE
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.PENDING}
    assert "'workers_offline': 1" in out.getvalue()


def test_a_fresh_loop_waits_a_grace_before_judging_workers(dead_worker_with_jobs: Worker) -> None:
    Maintenance().run_once()  # just started: heartbeats written while it was away do not count yet
    assert Worker.objects.get(pk=dead_worker_with_jobs.pk).status == WorkerStatus.ONLINE
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.RUNNING}


def test_a_database_outage_restarts_the_grace(dead_worker_with_jobs: Worker) -> None:
    loop = Maintenance(start_with_grace=False)
    saved_port = connection.settings_dict["PORT"]
    with socket.socket() as unused:  # a port nothing listens on: a real connection failure
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    connection.close()
    connection.settings_dict["PORT"] = closed_port
    try:
        loop.run_once()  # every step fails; the loop goes on
    finally:
        connection.close()
        connection.settings_dict["PORT"] = saved_port
    loop.run_once()  # back, but every worker missed its heartbeats during the outage
    assert Worker.objects.get(pk=dead_worker_with_jobs.pk).status == WorkerStatus.ONLINE
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.RUNNING}
