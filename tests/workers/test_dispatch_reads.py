"""The dispatcher's hand-written reads and INSERT give the rows the ORM would (PostgreSQL: one
statement, parts as JSON; SQLite: the ORM and the fleet's own statement)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connection
from django.db.models import Model
from django.utils import timezone

from agents import services as agent_services
from agents.models import Agent
from controlplane.sql_rows import insert_row
from workers.dispatch import _agent_and_fleet
from workers.models import CircuitState, Job, JobStatus, Worker


def _values(obj: Model) -> dict[str, Any]:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_the_agent_and_the_fleet_read_together_are_the_rows_the_orm_reads(
    active_agent: Agent, online_worker: Any, busy: Any
) -> None:
    opened = timezone.now() - timedelta(seconds=3)
    quiet = online_worker("w1@unit", capacity=4, load=0.25, serves=["voice_agent"], metadata={"zone": "a"})
    tripped = online_worker("w2@unit", circuit_state=CircuitState.HALF_OPEN, circuit_opened_at=opened, health_check_port=8081)
    busy(quiet, 2, active_agent)
    online_worker("stale@unit")
    Worker.objects.filter(pk="stale@unit").update(last_heartbeat_at=timezone.now() - timedelta(days=1))

    agent, fleet = _agent_and_fleet(active_agent.agent_id, timezone.now())

    assert agent is not None and _values(agent) == _values(Agent.objects.get(pk=active_agent.pk))
    assert agent.config_snapshot() == Agent.objects.get(pk=active_agent.pk).config_snapshot()
    by_id = {w.worker_id: w for w in fleet}
    assert sorted(by_id) == ["w1@unit", "w2@unit"]  # the stale heartbeat is left out
    for stored in (quiet, tripped):
        assert _values(by_id[stored.worker_id]) == _values(Worker.objects.get(pk=stored.pk))
    assert (by_id["w1@unit"].unfinished_jobs, by_id["w2@unit"].unfinished_jobs) == (2, 0)


def test_a_missing_or_destroyed_agent_reads_as_none_with_the_fleet(active_agent: Agent, online_worker: Any) -> None:
    online_worker("w1@unit")
    agent, fleet = _agent_and_fleet("nobody-here", timezone.now())
    assert agent is None and [w.worker_id for w in fleet] == ["w1@unit"]
    agent_services.agent_deactivate(agent=active_agent)
    agent_services.agent_destroy(agent=active_agent)
    assert _agent_and_fleet(active_agent.agent_id, timezone.now())[0] is None


def test_a_job_inserted_by_the_written_statement_reads_back_as_it_was_built(active_agent: Agent, online_worker: Any) -> None:
    worker = online_worker("w1@unit")
    now = timezone.now()
    job = Job(agent=active_agent, agent_version=active_agent.version, room_name="r", room={"name": "r"},
              metadata={"caller": "+1555", "nested": [1, {"a": None}]}, status=JobStatus.ASSIGNED, assigned_worker=worker,
              assigned_at=now, created_at=now, priority=2, idempotency_key=None, request_fingerprint="f" * 64)
    insert_row(job)
    assert not job._state.adding
    assert _values(Job.objects.get(pk=job.pk)) == _values(job)


def _comparable(value: Any) -> Any:
    """A statement parameter as a comparable value (psycopg's JSON wrapper has no equality)."""
    return ("json", value.obj) if hasattr(value, "obj") and hasattr(value, "dumps") else (type(value), value)


def test_the_written_insert_sends_the_values_get_db_prep_save_gives(active_agent: Agent, online_worker: Any) -> None:
    """insert_row skips get_db_prep_save where it would hand back the value unchanged (text,
    aware datetimes on PostgreSQL): the statement's parameters are still exactly its."""
    worker = online_worker("w1@unit")
    now = timezone.now()
    job = Job(agent=active_agent, agent_version=active_agent.version, room_name="r", room={"name": "r"},
              metadata={"k": "v"}, status=JobStatus.ASSIGNED, assigned_worker=worker, assigned_at=now,
              created_at=now, priority=2, idempotency_key=None, request_fingerprint="f" * 64,
              participant_identity="", failure_reason="")
    expected = [f.get_db_prep_save(getattr(job, f.attname), connection) for f in Job._meta.concrete_fields]
    sent: list[Any] = []

    def capture(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.extend(params)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        insert_row(job)

    assert [_comparable(v) for v in sent] == [_comparable(v) for v in expected]
    assert _values(Job.objects.get(pk=job.pk)) == _values(job)


def _forget_prepared_statements() -> None:
    """This connection's plans dropped (other tests on it may have prepared the INSERT);
    psycopg forgets its names of them as it sees the command."""
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")


def _prepared_job_inserts() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall() if row[0].startswith('INSERT INTO "workers_job"')]


def test_the_dispatch_insert_is_prepared_and_reads_back_as_it_was_built(active_agent: Agent, online_worker: Any) -> None:
    worker = online_worker("w1@unit")
    _forget_prepared_statements()
    assert not _prepared_job_inserts()
    jobs = []
    for i in range(2):  # the second runs the statement the first prepared
        now = timezone.now()
        job = Job(agent=active_agent, agent_version=active_agent.version, room_name=f"r{i}", room={"name": f"r{i}"},
                  metadata={"caller": "+1555", "nested": [1, {"a": None}]}, status=JobStatus.ASSIGNED,
                  assigned_worker=worker, assigned_at=now, created_at=now, priority=2, idempotency_key=None,
                  request_fingerprint="f" * 64)
        insert_row(job, prepared=True)
        jobs.append(job)

    assert len(_prepared_job_inserts()) == 1
    for job in jobs:
        assert _values(Job.objects.get(pk=job.pk)) == _values(job)


def test_an_insert_not_asked_to_be_prepared_is_not(active_agent: Agent) -> None:
    _forget_prepared_statements()
    insert_row(Job(agent=active_agent, room_name="r", room={"name": "r"}, metadata={}, created_at=timezone.now(),
                   request_fingerprint="f" * 64))

    assert not _prepared_job_inserts()
