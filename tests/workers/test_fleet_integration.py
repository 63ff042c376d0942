"""The fleet end to end: PostgreSQL, Redis and real `celery worker` subprocesses."""
from __future__ import annotations

from typing import Any

import pytest
from celery.utils.nodenames import worker_direct
from rest_framework.test import APIClient

from agents import services as agent_services
from sessions.models import AgentSession, SessionStatus
from tests.doubles.fixtures import allow_double_egress, double_egress_env
from tests.helpers import wait_for
from tests.workers.fleet import Fleet, poll
from workers.dispatch import job_cancel_request, job_dispatch
from workers.models import CircuitState, Job, JobStatus, Worker, WorkerStatus

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120),
              pytest.mark.usefixtures("fleet_settings")]
ECHO = "sessions.entrypoints:echo_session"


def echo_job(agent: Any, **kw: Any) -> Job:
    kw.setdefault("room", "room-1")
    return job_dispatch(agent_id=agent.agent_id, transport="local", **kw)


def running_on(job: Job) -> Job | None:
    fresh = Job.objects.get(pk=job.pk)
    return fresh if fresh.status == JobStatus.RUNNING and AgentSession.objects.filter(job=fresh, status=SessionStatus.ACTIVE).exists() else None


def http(method: str, url: str, key: str, body: dict[str, Any] | None = None, **headers: str) -> tuple[int, dict[str, Any]]:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_a_job_dispatched_over_http_runs_a_local_session_end_to_end(
    fleet: Fleet, openai_double: Any, api_key_factory: Any, live_server: Any, settings: Any
) -> None:
    allow_double_egress(settings, "FLEET_TEST_OPENAI_KEY")
    llm = {"provider": "openai", "base_url": openai_double.base_url, "api_key_env": "FLEET_TEST_OPENAI_KEY", "model": "gpt-4o-mini",
           "timeout_s": 5, "max_retries": 0}
    agent = agent_services.agent_create(agent_id="greeter", instructions="Greet people.", actor="test", llm_config=llm)
    agent_services.agent_activate(agent=agent)
    fleet.start("w1", FLEET_TEST_OPENAI_KEY="sk-test", **double_egress_env("FLEET_TEST_OPENAI_KEY"))
    openai_double.chat.push("Hello from the agent!")
    _, raw = api_key_factory("jobs:write", "sessions:control", "read")
    api = f"{live_server.url}/api/v1"

    status, job_body = http("POST", f"{api}/jobs/", raw, {"agent": "greeter", "room": "lobby", "transport": "local"},
                            **{"Idempotency-Key": "e2e-1"})
    assert status == 201, job_body
    job_id = job_body["job_id"]
    job = wait_for(lambda: running_on(Job.objects.get(pk=job_id)), timeout=20, what="the session running")
    session = AgentSession.objects.get(job=job)

    assert http("POST", f"{api}/sessions/{session.pk}/messages", raw, {"text": "hi there"})[0] in (200, 202)
    wait_for(lambda: session.events.filter(type="response_generated").exists(), timeout=20, what="the agent's reply")
    assert http("POST", f"{api}/sessions/{session.pk}/end", raw, {})[0] in (200, 202)
    wait_for(lambda: Job.objects.get(pk=job_id).status == JobStatus.COMPLETED, timeout=20, what="the job to complete")

    session.refresh_from_db()
    assert session.status == SessionStatus.DISCONNECTED and session.end_reason
    events = list(session.events.order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    types = [e.type for e in events]
    assert types[0] == "session_started" and "session_stopped" in types
    assert next(e for e in events if e.type == "response_generated").data["text"] == "Hello from the agent!"
    actions = [(e.data["action"], e.data["by"]) for e in events if e.type == "operator_action"]
    assert [a for a, _ in actions] == ["message", "end"] and all(by.startswith("apikey:") for _, by in actions)
    assert openai_double.requests_to("/chat/completions")[0].body["messages"][-1]["content"] == "hi there"
    assert http("GET", f"{api}/jobs/{job_id}/", raw)[1]["status"] == "completed"


def test_kill9_mid_session_redispatches_the_job_to_a_second_worker(fleet: Fleet, active_agent: Any) -> None:
    w1, w2 = fleet.start("w1", "w2", WORKER_ENTRY_POINT=ECHO)
    job = echo_job(active_agent)
    first = wait_for(lambda: running_on(job), timeout=20, what="the first attempt")
    victim, survivor = (w1, w2) if first.assigned_worker_id == w1.name else (w2, w1)
    old_session = AgentSession.objects.get(job=job)

    victim.kill9()
    second = poll(lambda: running_on(job) if Job.objects.get(pk=job.pk).attempts == 2 else None, timeout=30,
                  what="the job re-dispatched")
    assert second.assigned_worker_id == survivor.name
    assert "lease expired" in second.failure_reason or "heartbeats" in second.failure_reason
    old_session.refresh_from_db()
    assert old_session.status == SessionStatus.ERROR and old_session.job_id is None
    assert Worker.objects.get(pk=victim.name).status == WorkerStatus.OFFLINE or poll(
        lambda: Worker.objects.get(pk=victim.name).status == WorkerStatus.OFFLINE, what="victim offline")
    job_cancel_request(job_id=job.pk, actor="test")
    wait_for(lambda: not AgentSession.objects.live().exists(), timeout=15, what="the session ended")


def test_kill9_with_no_attempts_left_fails_the_job_with_a_reason(fleet: Fleet, active_agent: Any, settings: Any) -> None:
    settings.JOB_MAX_ATTEMPTS = 1
    (w1,) = fleet.start("w1", WORKER_ENTRY_POINT=ECHO)
    job = echo_job(active_agent)
    wait_for(lambda: running_on(job), timeout=20, what="the session running")
    w1.kill9()
    failed = poll(lambda: (j := Job.objects.get(pk=job.pk)).status == JobStatus.FAILED and j, timeout=30, what="the job failed")
    assert "gave up after 1 attempt" in failed.failure_reason
    assert not AgentSession.objects.live().exists()


def test_sigterm_drains_finishing_sessions_then_ends_the_rest(fleet: Fleet, active_agent: Any) -> None:
    (w1,) = fleet.start("w1", WORKER_ENTRY_POINT=ECHO, WORKER_DRAIN_TIMEOUT=4)
    short = echo_job(active_agent, room="short", metadata={"echo_end_after_s": 2})
    long = echo_job(active_agent, room="long")
    for job in (short, long):
        wait_for(lambda job=job: running_on(job), timeout=20, what="sessions running")

    w1.sigterm()
    wait_for(lambda: Worker.objects.get(pk=w1.name).status == WorkerStatus.DRAINING, timeout=10, what="draining")
    queued = echo_job(active_agent, room="during-drain")
    assert Job.objects.get(pk=queued.pk).status == JobStatus.PENDING  # not routed to a draining worker

    w1.proc.wait(30)
    short_s, long_s = AgentSession.objects.get(job=short), AgentSession.objects.get(job=long)
    assert short_s.end_reason == "completed"  # finished on its own during the drain
    assert long_s.end_reason == "worker_drain_timeout"  # ended cleanly at the drain timeout
    assert {Job.objects.get(pk=j.pk).status for j in (short, long)} == {JobStatus.COMPLETED}
    assert Worker.objects.get(pk=w1.name).status == WorkerStatus.OFFLINE
    assert Job.objects.get(pk=queued.pk).status == JobStatus.PENDING


def test_a_redelivered_task_never_runs_a_second_session(fleet: Fleet, active_agent: Any) -> None:
    from workers.tasks import run_session

    (w1,) = fleet.start("w1", WORKER_ENTRY_POINT=ECHO)
    job = echo_job(active_agent)
    wait_for(lambda: running_on(job), timeout=20, what="the session running")
    for _ in range(3):  # the broker delivers the same job again, e.g. after a visibility timeout
        run_session.apply_async(args=[job.pk], queue=worker_direct(w1.name))
    wait_for(lambda: w1.log().count("duplicate delivery ignored") == 3, timeout=15, what="the duplicates handled")
    assert AgentSession.objects.filter(job=job).count() == 1
    assert Job.objects.get(pk=job.pk).attempts == 1
    job_cancel_request(job_id=job.pk, actor="test")


def test_cancelling_a_job_ends_its_session_on_the_worker(fleet: Fleet, active_agent: Any) -> None:
    fleet.start("w1", WORKER_ENTRY_POINT=ECHO)
    job = echo_job(active_agent)
    wait_for(lambda: running_on(job), timeout=20, what="the session running")
    job_cancel_request(job_id=job.pk, actor="test")
    session = wait_for(lambda: AgentSession.objects.filter(job=job).exclude(status__in=("active", "connected")).first(),
                       timeout=10, what="the session ended")
    assert session.end_reason == "cancelled by test"
    assert session.events.filter(type="session_stopped").exists()


def test_round_robin_alternates_between_worker_processes(fleet: Fleet, active_agent: Any, settings: Any) -> None:
    settings.DISPATCH_STRATEGY = "round_robin"
    w1, w2 = fleet.start("w1", "w2", WORKER_ENTRY_POINT=ECHO)
    jobs = [echo_job(active_agent, room=f"r{i}", metadata={"echo_end_after_s": 0.2}) for i in range(4)]
    done = wait_for(lambda: all(Job.objects.get(pk=j.pk).status == JobStatus.COMPLETED for j in jobs), timeout=20, what="all done")
    assert done
    order = [Job.objects.get(pk=j.pk).assigned_worker_id for j in jobs]
    first, second = sorted([w1.name, w2.name])
    assert order == [first, second, first, second]


def test_least_connections_sends_the_next_job_to_the_idle_worker(fleet: Fleet, active_agent: Any, settings: Any) -> None:
    settings.DISPATCH_STRATEGY = "least_connections"
    w1, w2 = fleet.start("w1", "w2", WORKER_ENTRY_POINT=ECHO)
    first = echo_job(active_agent, room="a")
    busy = wait_for(lambda: running_on(first), timeout=20, what="first running").assigned_worker_id
    second = echo_job(active_agent, room="b")
    assert Job.objects.get(pk=second.pk).assigned_worker_id == ({w1.name, w2.name} - {busy}).pop()
    for job in (first, second):
        job_cancel_request(job_id=job.pk)


def test_the_breaker_opens_on_a_failing_worker_and_recovers(fleet: Fleet, active_agent: Any, settings: Any) -> None:
    settings.CIRCUIT_BREAKER_THRESHOLD = 2
    settings.CIRCUIT_BREAKER_COOLDOWN_SECONDS = 2
    (w1,) = fleet.start("w1", WORKER_ENTRY_POINT="tests.workers.entrypoints:flaky", CIRCUIT_BREAKER_THRESHOLD=2)
    for i in range(2):
        job = echo_job(active_agent, room=f"bad{i}", metadata={"fail": True})
        wait_for(lambda job=job: Job.objects.get(pk=job.pk).status == JobStatus.FAILED, timeout=20, what="a failure")
    assert Worker.objects.get(pk=w1.name).circuit_state == CircuitState.OPEN
    good = echo_job(active_agent, room="good")
    assert Job.objects.get(pk=good.pk).status == JobStatus.PENDING  # the open circuit takes no job
    poll(lambda: Job.objects.get(pk=good.pk).status == JobStatus.COMPLETED, timeout=20, what="the trial job after the cool-down")
    assert Worker.objects.get(pk=w1.name).circuit_state == CircuitState.CLOSED


def test_past_the_queue_limit_dispatch_answers_429(active_agent: Any, api_key_factory: Any, settings: Any) -> None:
    settings.JOB_QUEUE_LIMIT = 2
    _, raw = api_key_factory("jobs:write")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    codes = [client.post("/api/v1/jobs/", {"agent": active_agent.agent_id, "room": f"r{i}", "transport": "local"}, format="json")
             for i in range(3)]
    assert [r.status_code for r in codes] == [201, 201, 429]
    assert int(codes[2]["Retry-After"]) >= 1


def test_autoscaling_grows_a_worker_pool_through_remote_control(fleet: Fleet, active_agent: Any, settings: Any) -> None:
    from controlplane.celery import app
    from workers.autoscale import autoscale_apply

    settings.AUTOSCALE = True
    (w1,) = fleet.start("w1", concurrency=2, WORKER_ENTRY_POINT=ECHO, WORKER_REPORT_CPU_LOAD="false")
    assert Worker.objects.get(pk=w1.name).capacity == 2
    jobs = [echo_job(active_agent, room=f"r{i}") for i in range(6)]
    assert Job.objects.filter(status=JobStatus.PENDING).count() == 4  # two slots only

    result = autoscale_apply()
    assert result["desired_capacity"] == 8 and result["changes"] == {w1.name: 8}
    stats = wait_for(lambda: (app.control.inspect([w1.name], timeout=2).stats() or {}).get(w1.name), timeout=10, what="stats")
    assert stats["pool"]["max-concurrency"] == 8
    poll(lambda: all(running_on(j) for j in jobs), timeout=30, what="all six sessions running")
    for job in jobs:
        job_cancel_request(job_id=job.pk)


def test_a_full_worker_keeps_a_thread_for_maintenance_tasks(fleet: Fleet, active_agent: Any) -> None:
    from workers.tasks import ping

    (w1,) = fleet.start("w1", concurrency=3, WORKER_ENTRY_POINT=ECHO, WORKER_MAX_CONCURRENT_JOBS=2)
    assert Worker.objects.get(pk=w1.name).capacity == 2  # session slots below the pool's threads
    jobs = [echo_job(active_agent, room=f"r{i}") for i in range(3)]
    for job in jobs[:2]:
        wait_for(lambda job=job: running_on(job), timeout=20, what="two sessions filling the slots")
    assert Job.objects.get(pk=jobs[2].pk).status == JobStatus.PENDING  # no third session
    assert ping.apply_async().get(timeout=10) == "pong"  # the spare thread still serves the shared queue
    for job in jobs:
        job_cancel_request(job_id=job.pk)
