from __future__ import annotations

from typing import Any

import pytest

from agents import services as agent_services
from controlplane.errors import Conflict, DomainError, IllegalTransition, NotFound, Throttled
from workers.dispatch import job_cancel_request, job_dispatch, jobs_assign_pending
from workers.models import Job, JobStatus


def dispatch(agent: Any, **overrides: Any) -> Job:
    kwargs: dict[str, Any] = {"agent_id": agent.agent_id, "room": "room-1", "transport": "local"}
    kwargs.update(overrides)
    return job_dispatch(**kwargs)


def test_dispatch_assigns_a_worker_with_the_insert_and_sends_the_task_after_commit(
    active_agent: Any, online_worker: Any, django_capture_on_commit_callbacks: Any
) -> None:
    worker = online_worker("w1@unit")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = dispatch(active_agent, metadata={"caller": "+1555"}, priority=2, participant_identity="caller-1")
    assert job.created
    stored = Job.objects.get(pk=job.pk)
    assert (stored.status, stored.assigned_worker_id) == (JobStatus.ASSIGNED, worker.worker_id)
    assert len(callbacks) == 1  # the run_session message: sent only once the row is committed
    assert stored.agent_version == active_agent.version and stored.room == {"name": "room-1"}
    assert (stored.metadata, stored.priority, stored.participant_identity) == ({"caller": "+1555"}, 2, "caller-1")


def test_without_a_worker_the_job_is_routed_after_commit(active_agent: Any, django_capture_on_commit_callbacks: Any, online_worker: Any) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = dispatch(active_agent)
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING
    worker = online_worker("w1@unit")  # capacity appeared meanwhile
    callbacks[0]()
    assert Job.objects.get(pk=job.pk).assigned_worker_id == worker.worker_id


def test_a_job_waits_pending_when_no_worker_has_capacity(active_agent: Any, online_worker: Any, busy: Any, django_capture_on_commit_callbacks: Any) -> None:
    busy(online_worker("w1@unit", capacity=1), 1)
    with django_capture_on_commit_callbacks(execute=True):
        job = dispatch(active_agent)
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING


def test_pending_jobs_are_assigned_by_priority_then_age(active_agent: Any, online_worker: Any, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):  # no worker yet: all stay pending
        low = dispatch(active_agent, room="low", priority=9)
        first_high = dispatch(active_agent, room="high-1", priority=1)
        second_high = dispatch(active_agent, room="high-2", priority=1)
    online_worker("w1@unit", capacity=2)
    assert jobs_assign_pending() == 2
    status = dict(Job.objects.values_list("room_name", "status"))
    assert status == {"high-1": JobStatus.ASSIGNED, "high-2": JobStatus.ASSIGNED, "low": JobStatus.PENDING}
    assert first_high.created_at <= second_high.created_at and low.pk


def test_same_idempotency_key_and_body_returns_the_same_job(active_agent: Any, api_key_factory: Any) -> None:
    key, _ = api_key_factory("jobs:write")
    first = dispatch(active_agent, idempotency_key="abc", api_key=key)
    again = dispatch(active_agent, idempotency_key="abc", api_key=key)
    assert again.pk == first.pk and first.created and not again.created
    assert Job.objects.count() == 1


def test_same_idempotency_key_with_another_body_conflicts(active_agent: Any, api_key_factory: Any) -> None:
    key, _ = api_key_factory("jobs:write")
    dispatch(active_agent, idempotency_key="abc", api_key=key)
    with pytest.raises(Conflict) as exc:
        dispatch(active_agent, idempotency_key="abc", api_key=key, room="another-room")
    assert exc.value.field == "idempotency_key"


def test_idempotency_keys_are_per_api_key(active_agent: Any, api_key_factory: Any) -> None:
    one, _ = api_key_factory("jobs:write", name="one")
    two, _ = api_key_factory("jobs:write", name="two")
    assert dispatch(active_agent, idempotency_key="k", api_key=one).pk != dispatch(active_agent, idempotency_key="k", api_key=two).pk


def test_an_unknown_agent_is_not_found(db: Any) -> None:
    with pytest.raises(NotFound) as exc:
        job_dispatch(agent_id="nobody", room="r", transport="local")
    assert exc.value.field == "agent"


def test_an_inactive_agent_is_a_conflict(active_agent: Any) -> None:
    agent_services.agent_deactivate(agent=active_agent)
    with pytest.raises(Conflict, match="inactive"):
        dispatch(active_agent)


def test_a_full_queue_throttles_with_retry_after(active_agent: Any, settings: Any) -> None:
    settings.JOB_QUEUE_LIMIT = 2
    dispatch(active_agent, room="a")
    dispatch(active_agent, room="b")
    with pytest.raises(Throttled) as exc:
        dispatch(active_agent, room="c")
    assert exc.value.retry_after >= 1 and Job.objects.count() == 2


def test_the_per_api_key_rate_limit_throttles(active_agent: Any, api_key_factory: Any, settings: Any) -> None:
    settings.DISPATCH_RATE_LIMIT_PER_MINUTE = 3
    key, _ = api_key_factory("jobs:write")
    other, _ = api_key_factory("jobs:write", name="other")
    for i in range(3):
        dispatch(active_agent, room=f"r{i}", api_key=key)
    with pytest.raises(Throttled) as exc:
        dispatch(active_agent, room="r3", api_key=key)
    assert 1 <= exc.value.retry_after <= 60
    assert dispatch(active_agent, room="r3", api_key=other).created  # another key has its own budget


def test_a_replayed_request_is_not_rate_limited(active_agent: Any, api_key_factory: Any, settings: Any) -> None:
    settings.DISPATCH_RATE_LIMIT_PER_MINUTE = 1
    key, _ = api_key_factory("jobs:write")
    first = dispatch(active_agent, idempotency_key="once", api_key=key)
    assert dispatch(active_agent, idempotency_key="once", api_key=key).pk == first.pk


@pytest.mark.parametrize(
    ("field", "value"),
    [("priority", 0), ("priority", 11), ("priority", True), ("room", ""), ("room", "x" * 256), ("metadata", []), ("transport", "sip"),
     ("job_type", "mining"), ("idempotency_key", "")],
)
def test_bad_fields_are_named(active_agent: Any, field: str, value: Any) -> None:
    with pytest.raises(DomainError) as exc:
        dispatch(active_agent, **{field: value})
    assert exc.value.field == field
    assert Job.objects.count() == 0


def test_livekit_transport_needs_livekit_settings(active_agent: Any, settings: Any) -> None:
    settings.LIVEKIT_URL = ""
    with pytest.raises(DomainError) as exc:
        dispatch(active_agent, transport="livekit")
    assert exc.value.field == "transport"


def test_the_transport_defaults_to_livekit_when_it_is_configured(active_agent: Any, settings: Any) -> None:
    settings.LIVEKIT_URL, settings.LIVEKIT_API_KEY, settings.LIVEKIT_API_SECRET = "ws://lk", "key", "secret"
    assert dispatch(active_agent, transport=None).transport == "livekit"
    settings.LIVEKIT_URL = ""
    assert dispatch(active_agent, transport=None, room="r2").transport == "local"


def test_cancel_a_pending_job(active_agent: Any) -> None:
    job = dispatch(active_agent)
    cancelled = job_cancel_request(job_id=job.pk, actor="ops")
    assert cancelled.status == JobStatus.CANCELLED and cancelled.failure_reason == "cancelled by ops"


def test_cancelling_a_finished_job_is_a_conflict(active_agent: Any) -> None:
    job = dispatch(active_agent)
    job_cancel_request(job_id=job.pk)
    with pytest.raises(IllegalTransition):
        job_cancel_request(job_id=job.pk)


def test_cancelling_an_unknown_job_is_not_found(db: Any) -> None:
    with pytest.raises(NotFound):
        job_cancel_request(job_id="job_missing")


def test_a_broker_failure_after_commit_does_not_fail_the_dispatch(
    active_agent: Any, online_worker: Any, django_capture_on_commit_callbacks: Any, caplog: Any, monkeypatch: Any
) -> None:
    from controlplane.celery import app

    online_worker("w1@unit")
    app.pool  # noqa: B018 - make sure the pools exist, so they are put back afterwards
    app.amqp.producer_pool  # noqa: B018
    monkeypatch.setitem(app.conf, "broker_url", "redis://127.0.0.1:1/0")  # nothing listens there
    monkeypatch.setattr(app, "_pool", None)
    monkeypatch.setattr(app.amqp, "_producer_pool", None)
    with django_capture_on_commit_callbacks(execute=True):
        job = dispatch(active_agent)
    assert any("Error calling" in r.getMessage() for r in caplog.records)  # the publish did fail
    assert Job.objects.get(pk=job.pk).status == JobStatus.ASSIGNED  # the reaper re-routes it if unclaimed
