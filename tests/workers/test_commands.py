"""The fleet's management commands."""
from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from agents import services as agent_services
from tests.doubles.fixtures import allow_double_egress
from tests.doubles.openai_server import Reply
from workers.models import Job, WorkerStatus


def run(*args: Any, **kw: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=out, **kw)
    return out.getvalue()


def test_config_prints_effective_values_with_secrets_masked(db: Any, settings: Any) -> None:
    settings.LIVEKIT_URL, settings.LIVEKIT_API_KEY, settings.LIVEKIT_API_SECRET = "wss://lk.example", "APIkey123", "very-secret-value-42"
    settings.SECRET_KEY = "a-production-secret-key-of-some-length"
    settings.DATABASE_URL = "postgres://app:hunter2@db:5432/cp"
    data = json.loads(run("config", "--json"))
    config = data["config"]
    assert config["LIVEKIT_URL"] == "wss://lk.example"
    assert "very-secret" not in json.dumps(data) and "hunter2" not in json.dumps(data)
    assert config["DATABASE_URL"] == "postgres://app:****@db:5432/cp"
    assert config["worker"]["api_secret"].startswith("****")
    assert data["problems"] == []


def test_config_names_bad_worker_options(db: Any, monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    settings.SECRET_KEY = "a-production-secret-key-of-some-length"
    monkeypatch.setenv("WORKER_MAX_CONCURRENT_JOBS", "5000")
    with pytest.raises(CommandError, match="max_concurrent_jobs"):
        run("config")


def test_dispatch_creates_a_job(active_agent: Any) -> None:
    out = run("dispatch", active_agent.agent_id, "--room", "r1", "--metadata", '{"a": 1}', "--transport", "local")
    job = Job.objects.get()
    assert out.startswith(job.job_id) and job.metadata == {"a": 1}


def test_dispatch_reports_field_errors(active_agent: Any) -> None:
    with pytest.raises(CommandError, match="priority"):
        run("dispatch", active_agent.agent_id, "--room", "r1", "--priority", "0", "--transport", "local")


def test_drain_marks_workers_draining(online_worker: Any) -> None:
    online_worker("w1@unit")
    online_worker("w2@unit")
    run("drain", "--all")
    from workers.models import Worker

    assert set(Worker.objects.values_list("status", flat=True)) == {WorkerStatus.DRAINING}


def test_cluster_and_monitor_list_nodes_workers_and_jobs(active_agent: Any, online_worker: Any, busy: Any) -> None:
    busy(online_worker("w1@node-a", capacity=4), 2, active_agent)
    online_worker("w2@node-b")
    out = run("cluster")
    assert "node node-a" in out and "2/4" in out and "node node-b" in out and "desired capacity" in out
    assert json.loads(run("cluster", "--json"))["fleet"]["active_jobs"] == 2
    screen = run("monitor", "--once")
    assert "w1@node-a" in screen and "running" in screen


def test_start_builds_a_threads_pool_worker_with_the_node_capacity(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_MAX_CONCURRENT_JOBS", "25")
    out = run("start", "--name", "w9@host", "--print")
    assert "--pool custom" in out and "-c 29" in out and "-n w9@host" in out  # 25 session slots + 4 spare threads


def test_start_refuses_invalid_options(db: Any) -> None:
    with pytest.raises(CommandError, match="drain_timeout"):
        run("start", "--drain-timeout", "0", "--print")


def test_deploy_preflight_reports_each_step(db: Any, settings: Any) -> None:
    settings.SECRET_KEY = "a-production-secret-key-of-some-length"
    out = run("deploy", "--skip-deploy-checks")
    assert "migrations: up to date" in out and "service: database" in out and "ready to deploy" in out


def test_health_fails_when_a_service_is_unreachable(db: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from controlplane import health

    monkeypatch.setitem(health.CHECKS, "broker", lambda: (_ for _ in ()).throw(ConnectionError("broker down")))
    with pytest.raises(CommandError, match="broker"):
        run("health")


@pytest.fixture
def scripted_agent(db: Any, openai_double: Any, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Any:
    allow_double_egress(settings, "CMD_TEST_KEY")
    monkeypatch.setenv("CMD_TEST_KEY", "sk-test")
    llm = {"provider": "openai", "base_url": openai_double.base_url, "api_key_env": "CMD_TEST_KEY", "model": "gpt-4o-mini",
           "timeout_s": 5, "max_retries": 0}
    agent = agent_services.agent_create(agent_id="helper", instructions="Help.", actor="test", llm_config=llm)
    return agent


def test_the_test_command_passes_matching_turns(scripted_agent: Any, openai_double: Any) -> None:
    openai_double.chat.push("Hello, how can I help?", "Your order ships tomorrow.")
    out = run("test", "helper", "--turn", "hi", "--expect", "help", "--turn", "where is my order?", "--expect", "ships")
    assert out.count("PASS") == 2 and "2/2 turns passed" in out


def test_the_test_command_fails_a_mismatching_turn(scripted_agent: Any, openai_double: Any) -> None:
    openai_double.chat.push("No idea.")
    with pytest.raises(CommandError, match="1 turn"):
        run("test", "helper", "--turn", "where is my order?", "--expect", "ships")


def test_scale_without_arguments_prints_capacity_and_the_desired_figure(online_worker: Any) -> None:
    online_worker("w1@unit", capacity=6)
    out = run("scale")
    assert "capacity 6" in out and "desired" in out


def test_scale_refuses_an_unknown_worker(db: Any) -> None:
    with pytest.raises(CommandError, match="no online worker"):
        run("scale", "ghost@nowhere", "--capacity", "4")


def test_the_test_command_reads_a_script_and_checks_tool_calls(scripted_agent: Any, openai_double: Any, tmp_path: Any) -> None:
    script = tmp_path / "turns.json"
    script.write_text(json.dumps([{"user": "hello", "expect": "hi"}, {"user": "weather?", "expect_tool": "get_weather"}]))
    openai_double.chat.push("Hi!", "It is sunny.")
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 turn"):
        call_command("test", "helper", "--script", str(script), stdout=out)
    text = out.getvalue()
    assert "turn 1: hello" in text and "tool get_weather was not called" in text
    assert "1/2 turns passed" in text
