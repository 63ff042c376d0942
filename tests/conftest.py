"""Shared personas for the whole suite."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.utils.nodenames import worker_direct
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from agents import services as agent_services
from agents.models import Agent, Tool
from controlplane.models import ApiKey
from controlplane.scopes import ALL_SCOPES, READ
from sessions.models import AgentSession, SessionStatus
from tests.runtime.helpers import Recorder, SpeechMaker
from tests.workers.fleet import Fleet
from workers import registration
from workers.models import Worker, WorkerStatus
from workers.node import node, options_from_env

# the doubles' fixtures (openai_double, openai_env, livekit_double) for every test
pytest_plugins = ["tests.doubles.fixtures"]


def tool_schema(name: str, properties: dict[str, Any] | None = None, required: list[str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} for tests",
        "parameters": {"type": "object", "properties": properties or {}, "required": required or []},
    }


@pytest.fixture
def registered_tool(db: Any) -> Tool:
    """A tool row as the registry would sync it."""
    tool, _ = Tool.objects.update_or_create(
        name="lookup_order",
        defaults={
            "description": "Look up an order by its number.",
            "module": "tests.conftest",
            "function": "lookup_order",
            "schema": tool_schema("lookup_order", {"order_id": {"type": "string"}}, ["order_id"]),
        },
    )
    return tool


@pytest.fixture
def agent_config(registered_tool: Tool) -> dict[str, Any]:
    return {
        "instructions": "You help customers with their orders.",
        "tools": [registered_tool.name],
        "llm_config": {"provider": "openai", "model": "gpt-4o-mini"},
        "stt_config": {"provider": "openai"},
        "tts_config": {"provider": "openai", "voice": "alloy"},
        "vad_config": {"provider": "webrtcvad", "sensitivity": 0.5},
    }


@pytest.fixture
def configured_agent(agent_config: dict[str, Any]) -> Agent:
    config = dict(agent_config)
    return agent_services.agent_create(agent_id="support", instructions=config.pop("instructions"), actor="test", **config)


@pytest.fixture
def active_agent(configured_agent: Agent) -> Agent:
    return agent_services.agent_activate(agent=configured_agent)


@pytest.fixture
def operator(django_user_model: Any) -> Any:
    """A staff user who watches the dashboard and may act on sessions."""
    return django_user_model.objects.create_user(username="operator", password="operator-pass-123", is_staff=True, is_superuser=True)


@pytest.fixture
def api_key_factory(db: Any) -> Callable[..., tuple[ApiKey, str]]:
    def make(*scopes: str, name: str = "test-key") -> tuple[ApiKey, str]:
        return ApiKey.generate(name=name, scopes=list(scopes) or list(ALL_SCOPES))

    return make


# -- API clients --------------------------------------------------------------------------
@pytest.fixture
def client_with_scopes(api_key_factory: Callable[..., tuple[ApiKey, str]]) -> Callable[..., APIClient]:
    """An APIClient sending `Authorization: Bearer <key>` for a new key with these scopes."""

    def make(*scopes: str, name: str = "test-key") -> APIClient:
        key, raw = api_key_factory(*scopes, name=name)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        client.api_key = key  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def api_client(client_with_scopes: Callable[..., APIClient]) -> APIClient:
    """A client whose key holds every scope (`admin`)."""
    return client_with_scopes("admin", name="admin-key")


@pytest.fixture
def reader(client_with_scopes: Callable[..., APIClient]) -> APIClient:
    """A client whose key may only read."""
    return client_with_scopes(READ, name="read-only")


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


# -- rows as the workers would have written them --------------------------------------------
@pytest.fixture
def live_session(active_agent: Agent) -> AgentSession:
    """A session of the active agent in `active` state, as its worker would have recorded it."""
    return AgentSession.objects.create(agent=active_agent, agent_version=active_agent.version, room_id="room-1",
                                       status=SessionStatus.ACTIVE)


@pytest.fixture
def online_worker(db: Any) -> Callable[..., Worker]:
    """Register a worker row as a live node's heartbeat would keep it."""

    def make(worker_id: str, *, capacity: int = 10, weight: int = 1, load: float = 0.0, **fields: Any) -> Worker:
        return Worker.objects.create(
            worker_id=worker_id, hostname=worker_id.partition("@")[2], queue=worker_direct(worker_id).name,
            capacity=capacity, weight=weight, load=load, status=WorkerStatus.ONLINE,
            last_heartbeat_at=timezone.now(), **fields,
        )

    return make


@pytest.fixture
def worker(online_worker: Callable[..., Worker]) -> Worker:
    """One online worker, `celery@node-1`."""
    return online_worker("celery@node-1")


@pytest.fixture
def as_node(online_worker: Callable[..., Worker], drop_stray_connections: None) -> Iterator[Callable[..., Any]]:
    """This test process acting as a worker node: `as_node(worker_id, entry_point=…)`; with
    `online=True` its worker row is registered too. The node is restored after the test."""
    saved = (node.worker_id, node.options, node.draining)

    def become(worker_id: str, *, entry_point: str, online: bool = False, capacity: int = 5, **options: Any) -> Any:
        node.worker_id = worker_id
        node.options = options_from_env(entry_point=entry_point, drain_timeout=5, **options)
        node.draining = False
        if online:
            row = {"worker_type": options["worker_type"]} if "worker_type" in options else {}
            online_worker(worker_id, capacity=capacity, **row)
        return node

    yield become
    if registration._drain_timer is not None:  # a drain started here must not end a later test's sessions
        registration._drain_timer.cancel()
    node.worker_id, node.options, node.draining = saved


# -- real worker processes ------------------------------------------------------------------
@pytest.fixture
def empty_broker() -> None:
    """The Redis of REDIS_URL, emptied: a worker started now takes only this test's tasks."""
    assert django_settings.REDIS_URL, "set REDIS_URL: the worker takes its tasks from the broker"
    redis.Redis.from_url(django_settings.REDIS_URL).flushdb()


@pytest.fixture(scope="session")
def drop_stray_connections(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """Session-host threads and worker subprocesses hold connections that would keep the test
    database from being dropped at the end; end them first."""
    yield
    if connection.vendor != "postgresql" or not str(connection.settings_dict["NAME"]).startswith("test_"):
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def fleet(tmp_path: Path, drop_stray_connections: None) -> Iterator[Fleet]:
    """Real `celery worker` subprocesses, started by the test, stopped after it (even one that
    never came online: it would take later tests' jobs)."""
    fleet = Fleet(tmp_path)
    yield fleet
    fleet.stop()


@pytest.fixture
def worker_env() -> dict[str, Any]:
    """The environment of `fleet_worker`; a test module overrides it with what its worker needs."""
    return {}


@pytest.fixture
def fleet_worker(fleet: Fleet, worker_env: dict[str, Any]) -> Fleet:
    """One `celery worker` subprocess, online, with `worker_env`."""
    fleet.start("fleet", **worker_env)
    return fleet


# -- the voice runtime ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> SpeechMaker:
    """WAVs of real synthetic speech, made once per test run."""
    return SpeechMaker(tmp_path_factory.mktemp("speech"))


@pytest.fixture
def recorder() -> Recorder:
    """An event sink that keeps what the session emitted."""
    return Recorder()
