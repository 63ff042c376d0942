"""Fleet broadcasts leave the hot path but still reach /ws/fleet/ listeners, in order; job and
session events come from their state machines' transitions, one per change."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.db import connection

from controlplane.fleet_events import FLEET_GROUP, flush_fleet_events, publish_fleet_event
from sessions.models import AgentSession, SessionStatus
from sessions.services import session_fail, session_transition
from workers.breaker import breaker_record_failure
from workers.claims import job_claim, job_finish
from workers.dispatch import job_dispatch, jobs_assign_pending
from workers.registration import worker_drain


def fleet_events_during(action: Callable[[], Any]) -> list[dict[str, Any]]:
    """Every fleet message broadcast while `action` runs (on a thread of its own)."""

    def run() -> None:
        try:
            action()
        finally:
            connection.close()

    async def listen() -> list[dict[str, Any]]:
        # a layer instance of our own, as a web process listening on /ws/fleet/ has
        layer = RedisChannelLayer(hosts=[settings.REDIS_URL])
        channel = await layer.new_channel()
        # what was handed over before the action (the test's own setup) goes out before we
        # listen: the broadcaster delivers a moment after a hand-over (DELIVERY_DELAY_S)
        assert await asyncio.to_thread(flush_fleet_events, 10)
        await layer.group_add(FLEET_GROUP, channel)
        try:
            await asyncio.to_thread(run)
            assert await asyncio.to_thread(flush_fleet_events, 10)
            received = []
            while True:
                try:
                    received.append(await asyncio.wait_for(layer.receive(channel), 0.5))
                except asyncio.TimeoutError:
                    return received
        finally:
            await layer.group_discard(FLEET_GROUP, channel)

    received = asyncio.run(listen())
    assert all(m["type"] == "fleet.event" for m in received)
    return received


def data_of(kind: str, received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["data"] for m in received if m["kind"] == kind]


def test_published_events_reach_fleet_listeners_in_order() -> None:
    received = fleet_events_during(
        lambda: [publish_fleet_event("job", {"job_id": "job_1", "status": s}) for s in ("pending", "assigned", "running")])
    assert [m["data"]["status"] for m in received] == ["pending", "assigned", "running"]
    assert all(m["kind"] == "job" for m in received)


@pytest.mark.django_db(transaction=True)
def test_an_immediate_assignment_is_announced_once(active_agent: Any, online_worker: Any) -> None:
    online_worker("w1@events")
    jobs = []
    received = fleet_events_during(lambda: jobs.append(job_dispatch(agent_id=active_agent.agent_id, room="r1")))
    assert data_of("job", received) == [
        {"job_id": jobs[0].job_id, "status": "assigned", "worker_id": "w1@events", "attempts": 0},
    ]


@pytest.mark.django_db(transaction=True)
def test_a_queued_job_is_announced_pending_then_assigned(active_agent: Any, online_worker: Any) -> None:
    jobs = []

    def queue_then_route() -> None:
        jobs.append(job_dispatch(agent_id=active_agent.agent_id, room="r1"))  # no worker yet: it waits
        online_worker("w1@events")
        assert jobs_assign_pending() == 1

    received = fleet_events_during(queue_then_route)
    job_id = jobs[0].job_id
    assert data_of("job", received) == [
        {"job_id": job_id, "status": "pending", "worker_id": None, "attempts": 0},
        {"job_id": job_id, "status": "assigned", "worker_id": "w1@events"},  # moved by id: only what it set
    ]


@pytest.mark.django_db(transaction=True)
def test_claim_and_finish_are_announced_by_the_job_machine(active_agent: Any, online_worker: Any) -> None:
    online_worker("w1@events")
    job_id = job_dispatch(agent_id=active_agent.agent_id, room="r1").job_id

    def run_job() -> None:
        assert job_claim(job_id=job_id, worker_id="w1@events") is not None
        assert not job_finish(job_id=job_id, worker_id="w2@events")  # not its job: no change, no event
        assert job_finish(job_id=job_id, worker_id="w1@events", failure="boom")

    assert data_of("job", fleet_events_during(run_job)) == [
        {"job_id": job_id, "status": "running", "worker_id": "w1@events", "attempts": 1},
        {"job_id": job_id, "status": "failed", "worker_id": "w1@events", "failure_reason": "boom"},
    ]


@pytest.mark.django_db(transaction=True)
def test_session_transitions_are_announced_with_their_reason(active_agent: Any) -> None:
    session = AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id="r1")

    def live_then_fail() -> None:
        session_transition(session=session, status=SessionStatus.CONNECTED)
        session_fail(session=session, error="LLM provider unreachable")

    assert data_of("session", fleet_events_during(live_then_fail)) == [
        {"session_id": session.session_id, "job_id": None, "status": "connected"},
        {"session_id": session.session_id, "job_id": None, "status": "error", "reason": "LLM provider unreachable"},
    ]


@pytest.mark.django_db(transaction=True)
def test_worker_status_and_circuit_changes_are_announced(online_worker: Any, settings: Any) -> None:
    settings.CIRCUIT_BREAKER_THRESHOLD = 1
    online_worker("w1@events")

    def drain_and_trip() -> None:
        worker_drain(worker_id="w1@events", reason="maintenance")
        breaker_record_failure(worker_id="w1@events")

    assert data_of("worker", fleet_events_during(drain_and_trip)) == [
        {"worker_id": "w1@events", "status": "draining", "reason": "maintenance"},
        {"worker_id": "w1@events", "circuit_state": "open"},
    ]
