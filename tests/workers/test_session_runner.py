"""The worker side of a job, in this process: claim, host on the SessionHost loop, end."""
from __future__ import annotations

from typing import Any

import pytest

from sessions.control import send_session_command
from sessions.models import AgentSession, SessionStatus
from tests.helpers import wait_for
from tests.workers.helpers import InThread
from workers.dispatch import job_cancel_request, job_dispatch
from workers.models import Job, JobStatus, Worker, WorkerStatus
from workers.registration import heartbeat_once, worker_drain
from workers.services import job_requeue
from workers.session_host import host
from workers.session_runner import run_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def assigned(active_agent: Any, online_worker: Any, echo_node: Any) -> Job:
    online_worker(echo_node.worker_id)
    job = job_dispatch(agent_id=active_agent.agent_id, room="room-1", transport="local", metadata={"lang": "en"})
    job = Job.objects.get(pk=job.pk)  # committed, so already routed to the only worker
    assert (job.status, job.assigned_worker_id) == (JobStatus.ASSIGNED, echo_node.worker_id)
    return job


def active_session_of(job: Job) -> AgentSession:
    return wait_for(lambda: AgentSession.objects.filter(job=job, status=SessionStatus.ACTIVE).first(), what="a live session")


def test_a_job_runs_its_session_and_completes_when_the_session_ends(assigned: Job, echo_node: Any) -> None:
    task = InThread(lambda: run_job(job_id=assigned.pk, worker_id=echo_node.worker_id))
    session = active_session_of(assigned)
    assert Job.objects.get(pk=assigned.pk).status == JobStatus.RUNNING
    send_session_command(session.pk, "message", actor="ops", text="hello")
    wait_for(lambda: session.events.filter(type="response_generated").exists(), what="the echo")
    send_session_command(session.pk, "end", actor="ops")
    assert task.join() == "completed"
    job, session = Job.objects.get(pk=assigned.pk), AgentSession.objects.get(pk=session.pk)
    assert job.status == JobStatus.COMPLETED and job.attempts == 1 and job.completed_at
    assert session.status == SessionStatus.DISCONNECTED and session.end_reason == "ended by ops"
    types = list(session.events.order_by("seq").values_list("type", flat=True))
    assert types == ["session_started", "operator_action", "text_received", "response_generated", "session_stopped",
                     "call_ended"]  # the end-of-call report, stored once the row is closed
    assert list(session.events.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3, 4, 5, 6]


def test_a_redelivered_task_never_runs_a_second_session(assigned: Job, echo_node: Any) -> None:
    first = InThread(lambda: run_job(job_id=assigned.pk, worker_id=echo_node.worker_id))
    session = active_session_of(assigned)
    assert run_job(job_id=assigned.pk, worker_id=echo_node.worker_id) == "duplicate"
    assert AgentSession.objects.filter(job=assigned).count() == 1
    send_session_command(session.pk, "end", actor="ops")
    assert first.join() == "completed"
    assert run_job(job_id=assigned.pk, worker_id=echo_node.worker_id) == "duplicate"  # and after it ended
    assert AgentSession.objects.count() == 1


def test_cancelling_the_job_ends_its_session(assigned: Job, echo_node: Any) -> None:
    task = InThread(lambda: run_job(job_id=assigned.pk, worker_id=echo_node.worker_id))
    session = active_session_of(assigned)
    job_cancel_request(job_id=assigned.pk, actor="api")
    assert task.join() == "superseded"
    session.refresh_from_db()
    assert session.status == SessionStatus.DISCONNECTED and session.end_reason == "cancelled by api"
    assert Job.objects.get(pk=assigned.pk).status == JobStatus.CANCELLED


def test_the_heartbeat_ends_a_session_whose_job_was_taken_back(assigned: Job, echo_node: Any) -> None:
    task = InThread(lambda: run_job(job_id=assigned.pk, worker_id=echo_node.worker_id))
    session = active_session_of(assigned)
    job_requeue(job=Job.objects.get(pk=assigned.pk), reason="lease expired")  # as the reaper would
    assert heartbeat_once() == {assigned.pk}
    assert task.join() == "superseded"
    session.refresh_from_db()
    assert session.end_reason == "job no longer held by this worker"


def test_a_draining_worker_refuses_new_jobs(assigned: Job, echo_node: Any) -> None:
    echo_node.draining = True
    Worker.objects.filter(pk=echo_node.worker_id).update(status=WorkerStatus.DRAINING)
    assert run_job(job_id=assigned.pk, worker_id=echo_node.worker_id) == "refused"
    job = Job.objects.get(pk=assigned.pk)
    assert job.status == JobStatus.PENDING and job.attempts == 0 and "draining" in job.failure_reason
    assert not AgentSession.objects.exists()


def test_a_refused_job_is_routed_to_another_worker(assigned: Job, echo_node: Any, online_worker: Any) -> None:
    other = online_worker("other@unit")
    echo_node.draining = True
    Worker.objects.filter(pk=echo_node.worker_id).update(status=WorkerStatus.DRAINING)
    assert run_job(job_id=assigned.pk, worker_id=echo_node.worker_id) == "refused"
    job = Job.objects.get(pk=assigned.pk)
    assert (job.status, job.assigned_worker_id) == (JobStatus.ASSIGNED, other.pk)


def test_drain_lets_sessions_run_then_ends_them_at_the_drain_timeout(assigned: Job, echo_node: Any) -> None:
    echo_node.options = echo_node.options.model_copy(update={"drain_timeout": 1})
    task = InThread(lambda: run_job(job_id=assigned.pk, worker_id=echo_node.worker_id))
    session = active_session_of(assigned)
    worker_drain(reason="test")
    assert AgentSession.objects.get(pk=session.pk).status == SessionStatus.ACTIVE  # not cut at once
    assert task.join() == "completed"
    session.refresh_from_db()
    assert session.end_reason == "worker_drain_timeout"
    assert Job.objects.get(pk=assigned.pk).status == JobStatus.COMPLETED


def test_an_entry_point_that_raises_fails_job_and_session(assigned: Job, echo_node: Any) -> None:
    echo_node.options = echo_node.options.model_copy(update={"entry_point": "tests.workers.entrypoints:crashing"})
    assert run_job(job_id=assigned.pk, worker_id=echo_node.worker_id) == "failed"
    job = Job.objects.get(pk=assigned.pk)
    assert job.status == JobStatus.FAILED and "provider exploded" in job.failure_reason
    assert AgentSession.objects.get(job=job).status == SessionStatus.ERROR


def test_an_entry_point_that_cannot_be_loaded_fails_the_job_with_a_reason(assigned: Job, echo_node: Any) -> None:
    echo_node.options = echo_node.options.model_copy(update={"entry_point": "nowhere.to_be:found"})
    assert run_job(job_id=assigned.pk, worker_id=echo_node.worker_id) == "failed"
    assert "cannot be loaded" in Job.objects.get(pk=assigned.pk).failure_reason


def test_a_drain_requested_from_the_web_is_picked_up_by_the_heartbeat(echo_node: Any, online_worker: Any) -> None:
    from workers.registration import worker_drain as request_drain

    online_worker(echo_node.worker_id)
    other = online_worker("other@unit")
    request_drain(worker=other)  # another node: only marked
    assert Worker.objects.get(pk=other.pk).status == WorkerStatus.DRAINING
    Worker.objects.filter(pk=echo_node.worker_id).update(status=WorkerStatus.DRAINING)  # as the API does for us
    heartbeat_once()
    assert echo_node.draining
    assert Worker.objects.get(pk=echo_node.worker_id).status == WorkerStatus.DRAINING


def test_a_session_runs_the_agent_version_it_was_dispatched_with(assigned: Job, echo_node: Any, active_agent: Any) -> None:
    from agents import services as agent_services
    from tests.workers import entrypoints

    dispatched_version = assigned.agent_version
    agent_services.agent_update(agent=active_agent, instructions="Changed after dispatch.")
    echo_node.options = echo_node.options.model_copy(update={"entry_point": "tests.workers.entrypoints:recording"})
    entrypoints.seen.clear()
    assert run_job(job_id=assigned.pk, worker_id=echo_node.worker_id) == "completed"
    ctx = entrypoints.seen[0]
    assert ctx.agent_version == dispatched_version and ctx.agent_config["instructions"] != "Changed after dispatch."
    assert (ctx.job_id, ctx.room_name, ctx.metadata, ctx.worker_id, ctx.attempt) == (assigned.pk, "room-1", {"lang": "en"}, echo_node.worker_id, 1)
    assert AgentSession.objects.get(job=assigned).agent_version == dispatched_version


def test_sessions_of_one_worker_process_share_one_event_loop(active_agent: Any, online_worker: Any, echo_node: Any) -> None:
    online_worker(echo_node.worker_id, capacity=5)
    jobs = [job_dispatch(agent_id=active_agent.agent_id, room=f"room-{i}", transport="local") for i in range(3)]
    tasks = [InThread(lambda job=job: run_job(job_id=job.pk, worker_id=echo_node.worker_id)) for job in jobs]
    contexts = wait_for(lambda: len(echo_node.contexts()) == 3 and all(c._loop for c in echo_node.contexts()) and echo_node.contexts(),
                        what="three live sessions")
    assert len({id(ctx._loop) for ctx in contexts}) == 1  # one SessionHost loop, not a loop per session
    assert all(ctx._loop is host.loop for ctx in contexts) and host.loop.is_running()
    for job in jobs:
        job_cancel_request(job_id=job.pk, actor="test")
    assert [t.join() for t in tasks] == ["superseded"] * 3


def test_a_session_the_runtime_ended_in_error_fails_the_job(assigned: Job, echo_node: Any) -> None:
    echo_node.options = echo_node.options.model_copy(update={"entry_point": "tests.workers.entrypoints:erroring"})
    assert run_job(job_id=assigned.pk, worker_id=echo_node.worker_id) == "failed"
    job = Job.objects.get(pk=assigned.pk)
    assert job.status == JobStatus.FAILED and job.failure_reason == "session error: transport lost"


def test_a_config_the_runtime_cannot_run_fails_the_job_but_not_the_worker(assigned: Job, echo_node: Any) -> None:
    from agents.models import AgentVersion
    from workers.models import CircuitState

    # a version stored before a provider was withdrawn: it no longer parses
    version = AgentVersion.objects.get(agent_id=assigned.agent_id, version=assigned.agent_version)
    AgentVersion.objects.filter(pk=version.pk).update(config={**version.config, "llm_config": {"provider": "withdrawn"}})
    echo_node.options = echo_node.options.model_copy(update={"entry_point": "sessions.entrypoints:agent_session"})
    assert run_job(job_id=assigned.pk, worker_id=echo_node.worker_id) == "failed"
    job = Job.objects.get(pk=assigned.pk)
    assert job.status == JobStatus.FAILED and job.failure_reason.startswith("ConfigError")
    worker = Worker.objects.get(pk=echo_node.worker_id)
    assert (worker.consecutive_failures, worker.circuit_state) == (0, CircuitState.CLOSED)


def test_a_crashing_session_counts_against_the_worker(assigned: Job, echo_node: Any) -> None:
    echo_node.options = echo_node.options.model_copy(update={"entry_point": "tests.workers.entrypoints:crashing"})
    assert run_job(job_id=assigned.pk, worker_id=echo_node.worker_id) == "failed"
    assert Worker.objects.get(pk=echo_node.worker_id).consecutive_failures == 1


def test_a_freed_slot_goes_to_the_waiting_job_at_once(active_agent: Any, online_worker: Any, echo_node: Any) -> None:
    online_worker(echo_node.worker_id, capacity=1)
    first = job_dispatch(agent_id=active_agent.agent_id, room="first", transport="local")
    waiting = job_dispatch(agent_id=active_agent.agent_id, room="second", transport="local")
    assert Job.objects.get(pk=waiting.pk).status == JobStatus.PENDING  # the one slot is taken
    task = InThread(lambda: run_job(job_id=first.pk, worker_id=echo_node.worker_id))
    send_session_command(active_session_of(first).pk, "end", actor="ops")
    assert task.join() == "completed"
    # no maintenance tick ran: the finishing job handed its slot on
    assert Job.objects.get(pk=waiting.pk).assigned_worker_id == echo_node.worker_id


def test_each_phase_of_a_job_reaches_the_broadcaster_in_one_hand_over(assigned: Job, echo_node: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # claim and opening, the echo's start, its stop, close + report + the job's end: each one
    # hand-over, every change stored before it, in the order the changes were made
    from controlplane import broadcaster as broadcaster_module

    hand_overs: list[list[str]] = []
    real_hand_over = broadcaster_module.broadcaster._hand_over

    def label(group: str, message: dict[str, Any]) -> list[str]:
        if message["type"] == "fleet.event":
            return [f"{message['kind']} {message['data']['status']}"]
        return [envelope["type"] for envelope in message["events"]]

    def record(items: Any) -> None:
        hand_overs.append([name for sends, _ in items for group, message in sends for name in label(group, message)])
        real_hand_over(items)

    monkeypatch.setattr(broadcaster_module.broadcaster, "_hand_over", record)
    Job.objects.filter(pk=assigned.pk).update(metadata={"echo_end_after_s": 0})

    assert run_job(job_id=assigned.pk, worker_id=echo_node.worker_id) == "completed"

    assert hand_overs == [
        ["job running", "session initializing"],
        ["session connected", "session active", "session_started"],
        ["session_stopped"],
        ["session disconnected", "call_ended", "job completed"],
    ]
