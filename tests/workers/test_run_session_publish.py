"""The dispatcher's `workers.run_session` message, pushed straight to Redis (workers.run_session_publish),
is the one Celery's send_task puts there, and a real worker runs the job it names."""
from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
import redis
from celery.utils.nodenames import worker_direct
from django.conf import settings as django_settings

from controlplane.celery import app
from sessions.models import AgentSession
from tests.helpers import wait_for
from tests.workers.fleet import Fleet
from workers import run_session_publish
from workers.dispatch import job_dispatch, send_to_worker
from workers.models import Job, JobStatus
from workers.run_session_publish import RUN_SESSION_TASK, run_session_message, send_run_session

ECHO = "sessions.entrypoints:echo_session"


@pytest.fixture
def broker(empty_broker: None) -> redis.Redis:
    return redis.Redis.from_url(django_settings.REDIS_URL)


@pytest.fixture
def celery_sends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The job ids that went the Celery way (send_task), in order."""
    sent: list[str] = []
    original = run_session_publish._celery_send

    def spy(job_id: str, queue: Any, task_id: str | None = None) -> None:
        sent.append(job_id)
        original(job_id, queue, task_id=task_id)

    monkeypatch.setattr(run_session_publish, "_celery_send", spy)
    return sent


def _queued(broker: redis.Redis, queue_name: str) -> list[dict[str, Any]]:
    """The queue's messages, oldest first."""
    return [json.loads(raw) for raw in reversed(broker.lrange(queue_name, 0, -1))]


def _without_ids(message: dict[str, Any]) -> dict[str, Any]:
    """A message with its per-message identifiers (task id, delivery tag) blanked."""
    m = json.loads(json.dumps(message))
    task_id = m["headers"]["id"]
    assert m["headers"]["root_id"] == task_id and m["properties"]["correlation_id"] == task_id
    m["headers"]["id"] = m["headers"]["root_id"] = m["properties"]["correlation_id"] = "<task id>"
    m["properties"]["delivery_tag"] = "<tag>"
    return m


def test_the_built_message_is_the_one_send_task_pushes(broker: redis.Redis) -> None:
    queue = worker_direct(f"compare-{uuid.uuid4().hex[:8]}@test")
    app.send_task(RUN_SESSION_TASK, args=["job-abc"], queue=queue, ignore_result=True)
    (celery_made,) = _queued(broker, queue.name)

    built = run_session_message("job-abc", queue.name, task_id=celery_made["headers"]["id"],
                                delivery_tag=celery_made["properties"]["delivery_tag"])

    assert built == celery_made
    body = json.loads(base64.b64decode(built["body"]))
    assert body == [["job-abc"], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]


def test_the_first_message_to_a_queue_goes_through_celery_and_the_next_ones_straight_to_redis_unchanged(
    broker: redis.Redis, celery_sends: list[str]
) -> None:
    worker_id = f"fast-{uuid.uuid4().hex[:8]}@test"
    queue_name = worker_direct(worker_id).name
    for job_id in ("job-1", "job-2", "job-3"):
        send_to_worker(job_id, worker_id)

    assert celery_sends == ["job-1"]  # the rest were pushed directly
    first, second, third = _queued(broker, queue_name)
    assert [json.loads(base64.b64decode(m["body"]))[0] for m in (first, second, third)] == [["job-1"], ["job-2"], ["job-3"]]
    # Celery's message but for the job id in the body and its printable form
    for pushed, job_id in ((second, "job-2"), (third, "job-3")):
        celery_made = _without_ids(first)
        celery_made["body"], celery_made["headers"]["argsrepr"] = pushed["body"], f"['{job_id}']"
        assert _without_ids(pushed) == celery_made
    assert len({m["headers"]["id"] for m in (first, second, third)}) == 3
    assert len({m["properties"]["delivery_tag"] for m in (first, second, third)}) == 3


def test_a_publish_signal_receiver_sends_the_celery_way(broker: redis.Redis, celery_sends: list[str]) -> None:
    from celery import signals

    seen: list[str] = []

    def receiver(sender: Any = None, headers: Any = None, **_: Any) -> None:
        seen.append(headers["id"])

    worker_id = f"signal-{uuid.uuid4().hex[:8]}@test"
    send_run_session("job-1", worker_id)
    signals.before_task_publish.connect(receiver, weak=False)
    try:
        send_run_session("job-2", worker_id)
    finally:
        signals.before_task_publish.disconnect(receiver)

    assert celery_sends == ["job-1", "job-2"]
    assert len(seen) == 1 and len(_queued(broker, worker_direct(worker_id).name)) == 2


def test_a_failed_push_goes_the_celery_way_with_the_same_task_id(
    broker: redis.Redis, celery_sends: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker_id = f"flaky-{uuid.uuid4().hex[:8]}@test"
    send_run_session("job-1", worker_id)
    fast = run_session_publish._fast_path()
    assert fast is not None
    channel, client = fast

    def refused(*args: Any, **kwargs: Any) -> None:
        raise redis.ConnectionError("connection reset by peer")

    # the connection the push gets from its client's pool fails as it sends (the Celery way
    # has connections of its own)
    pool = client.connection_pool
    failing = pool.get_connection()
    pool.release(failing)
    monkeypatch.setattr(failing, "send_command", refused)
    monkeypatch.setattr(pool, "get_connection", lambda *args, **kwargs: failing)
    send_run_session("job-2", worker_id)

    assert celery_sends == ["job-1", "job-2"]
    assert [json.loads(base64.b64decode(m["body"]))[0] for m in _queued(broker, worker_direct(worker_id).name)] == [
        ["job-1"], ["job-2"]]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
@pytest.mark.usefixtures("fleet_settings")
def test_a_worker_runs_jobs_whose_message_was_pushed_straight_to_redis(
    fleet: Fleet, active_agent: Any, celery_sends: list[str]
) -> None:
    (w1,) = fleet.start("w1", WORKER_ENTRY_POINT=ECHO)
    jobs = [job_dispatch(agent_id=active_agent.agent_id, room=f"room-{i}", transport="local",
                         metadata={"echo_end_after_s": 0}) for i in range(3)]

    assert {Job.objects.get(pk=j.pk).assigned_worker_id for j in jobs} == {w1.name}
    assert celery_sends == [jobs[0].pk]  # only the first message to w1's queue went through send_task
    for job in jobs:
        wait_for(lambda job=job: Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED, timeout=30,
                 what=f"job {job.pk} completed")
        assert AgentSession.objects.filter(job_id=job.pk).count() == 1


@pytest.mark.parametrize("job_id", ["job-abc", "job_01JABCDEFGHJKMNPQRSTVWXYZ0", "it's \"quoted\"", "ünïcode-id", "x" * 100,
                                    "x" * 2000, "tab\there", ""])
def test_the_args_repr_is_the_one_send_task_writes(job_id: str) -> None:
    from celery.utils.saferepr import saferepr

    expected = saferepr([job_id], app.amqp.argsrepr_maxsize, maxlevels=app.conf.task_repr_maxlevels)
    assert run_session_publish._argsrepr([job_id]) == expected


def test_a_key_prefixing_client_pushes_under_its_prefix(broker: redis.Redis) -> None:
    """kombu's `global_keyprefix` makes its client prefix every key: the push keeps that client's
    own lpush, so the message lands where the worker's consumer reads (prefix + queue)."""
    from kombu.transport.redis import PrefixedStrictRedis

    client = PrefixedStrictRedis(connection_pool=broker.connection_pool, global_keyprefix="cp-test:")
    queue_name = f"prefixed-{uuid.uuid4().hex[:8]}"
    run_session_publish._lpush(client, queue_name, "payload")

    assert broker.lrange(f"cp-test:{queue_name}", 0, -1) == [b"payload"]
    assert not broker.exists(queue_name)


def test_a_plain_client_pushes_onto_the_queue_itself(broker: redis.Redis) -> None:
    queue_name = f"plain-{uuid.uuid4().hex[:8]}"
    run_session_publish._lpush(redis.Redis(connection_pool=broker.connection_pool), queue_name, "one")
    run_session_publish._lpush(redis.Redis(connection_pool=broker.connection_pool), queue_name, "two")

    assert broker.lrange(queue_name, 0, -1) == [b"two", b"one"]  # LPUSH: the newest first, as before
