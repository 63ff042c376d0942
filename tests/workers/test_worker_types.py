"""A worker only takes jobs of the types it serves (voice, multimodal, text, custom)."""
from __future__ import annotations

from typing import Any

import pytest

from agents import services as agent_services
from agents.models import Agent
from workers.dispatch import job_dispatch, jobs_assign_pending
from workers.models import Job, JobStatus
from workers.node import options_from_env
from workers.registration import worker_register
from workers.worker_types import served_types

pytestmark = pytest.mark.django_db


def agent_with(agent_id: str, **config: Any) -> Agent:
    agent = agent_services.agent_create(agent_id=agent_id, instructions="Be brief.", **config)
    return agent_services.agent_activate(agent=agent)


@pytest.fixture
def realtime_agent() -> Agent:
    return agent_with("realtime", llm_config={"provider": "openai_realtime"})


@pytest.fixture
def text_agent() -> Agent:
    return agent_with("texty", llm_config={"provider": "openai"})


def dispatch(agent: Agent, room: str = "room") -> Job:
    return Job.objects.get(pk=job_dispatch(agent_id=agent.agent_id, room=room, transport="local").pk)


def test_a_job_records_the_worker_type_its_agent_needs(active_agent: Agent, realtime_agent: Agent, text_agent: Agent) -> None:
    assert [dispatch(a).worker_type for a in (active_agent, realtime_agent, text_agent)] == ["voice_agent", "multimodal_agent", "text_agent"]


def test_a_realtime_job_goes_only_to_a_multimodal_worker(realtime_agent: Agent, online_worker: Any) -> None:
    online_worker("voice@a", worker_type="voice_agent")
    online_worker("mm@b", worker_type="multimodal_agent")
    for i in range(3):
        assert dispatch(realtime_agent, room=f"r{i}").assigned_worker_id == "mm@b"


def test_a_voice_job_never_goes_to_a_multimodal_worker(active_agent: Agent, online_worker: Any) -> None:
    online_worker("mm@b", worker_type="multimodal_agent")
    job = dispatch(active_agent)
    assert (job.status, job.assigned_worker_id) == (JobStatus.PENDING, None)


def test_text_agents_run_on_voice_workers_by_default(text_agent: Agent, online_worker: Any) -> None:
    online_worker("voice@a", worker_type="voice_agent")
    assert dispatch(text_agent).assigned_worker_id == "voice@a"


def test_a_full_pool_of_one_type_does_not_stall_the_others(active_agent: Agent, realtime_agent: Agent, online_worker: Any) -> None:
    waiting_realtime = dispatch(realtime_agent, room="first")  # no multimodal worker: stays pending
    waiting_voice = dispatch(active_agent, room="second")
    assert {waiting_realtime.status, waiting_voice.status} == {JobStatus.PENDING}
    online_worker("voice@a", worker_type="voice_agent")
    assert jobs_assign_pending() == 1
    assert Job.objects.get(pk=waiting_voice.pk).assigned_worker_id == "voice@a"
    assert Job.objects.get(pk=waiting_realtime.pk).status == JobStatus.PENDING


def test_worker_serves_can_be_listed_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_TYPE", "text_agent")
    monkeypatch.setenv("WORKER_SERVES", "text_agent,multimodal_agent")
    worker = worker_register(worker_id="w@explicit", options=options_from_env())
    assert worker.serves == ["text_agent", "multimodal_agent"]


def test_an_unknown_served_type_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_SERVES", "voice_agent,gpu_agent")
    with pytest.raises(ValueError, match="serves"):
        options_from_env()


def test_default_served_types() -> None:
    assert served_types("voice_agent") == ["voice_agent", "text_agent"]
    assert served_types("custom") == ["custom"]
