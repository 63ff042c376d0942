"""Tools queued on Celery and run by a real `celery -A controlplane worker -Q tools` process."""
from __future__ import annotations

import asyncio
import importlib
import json
import os

import pytest
from django.db import connection

from agents.tools import FunctionTool, registry
from runtime.tool_types import ToolCall, ToolInvocation
from agents.tools.executor import ToolExecutor
from agents.tools.remote import RUN_TOOL_TASK, CeleryToolRunner
from agents.tools.sync import tool_sync
from tests.tools.tool_worker import ToolWorker

BROKER = os.environ.get("TOOLS_TEST_REDIS_URL", "redis://127.0.0.1:6379/3")

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def tool_worker(django_db_setup, django_db_blocker):
    db = connection.settings_dict
    database_url = None
    if "postgresql" in db["ENGINE"]:  # share the test database with the worker
        database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    # The worker loads these tools through TOOL_MODULES; this process registers them too,
    # for this module only (other tests sync the registry and should not see them).
    module = importlib.import_module("tests.tools.celery_tools")
    names = [t.name for t in vars(module).values() if isinstance(t, FunctionTool)]
    for name in names:
        if registry.get(name) is None:
            registry.register(getattr(module, name))
    try:
        with ToolWorker(broker_url=BROKER, database_url=database_url,
                        tool_modules=["tests.tools.celery_tools"]) as worker:
            yield worker
    finally:
        for name in names:
            registry.deregister(name)


@pytest.fixture
def executor(tool_worker) -> ToolExecutor:
    tool_sync()
    return ToolExecutor.for_tools(
        ["celery_add", "celery_where", "celery_refuse", "celery_crash", "celery_sleep", "get_weather"],
        celery_runner=CeleryToolRunner(app=tool_worker.app),
    )


def invocation() -> ToolInvocation:
    return ToolInvocation(session=object(), speech_handle=None, user_data={"user": "ana"},
                          session_id="sess-9", agent_id="agent-3")


async def call(executor: ToolExecutor, name: str, arguments: str = "{}"):
    return await executor.execute(ToolCall(f"call-{name}", name, arguments), invocation())


async def test_a_queued_tool_runs_in_the_worker_process(executor) -> None:
    assert executor.get("celery_add").execution == "celery"
    result = await call(executor, "celery_add", '{"a": 2, "b": "40"}')
    assert (result.output, result.error_kind) == ("42", None)
    where = json.loads((await call(executor, "celery_where")).output)
    assert where["pid"] != os.getpid()
    assert (where["call_id"], where["session_id"], where["user"]) == ("call-celery_where", "sess-9", "ana")


async def test_an_inline_tool_runs_here_next_to_queued_ones(executor) -> None:
    assert executor.get("get_weather").execution == "inline"
    result = await call(executor, "get_weather", '{"city": "Paris"}')
    assert result.output.startswith("The weather in Paris")


async def test_a_tool_error_in_the_worker_reaches_the_model(executor) -> None:
    result = await call(executor, "celery_refuse", '{"reason": "closed"}')
    assert result.error_kind == "tool_error" and "refused: closed" in result.output


async def test_an_exception_in_the_worker_is_generic(executor) -> None:
    result = await call(executor, "celery_crash")
    assert result.error_kind == "exception"
    assert "worker-side detail" not in result.output


async def test_a_slow_queued_tool_times_out(executor) -> None:
    result = await call(executor, "celery_sleep", '{"seconds": 1}')
    assert result.error_kind == "timeout" and "500 ms" in result.output


async def test_bad_arguments_are_refused_before_queueing(executor) -> None:
    result = await call(executor, "celery_add", '{"a": 1')
    assert result.error_kind == "invalid_arguments"


async def test_the_worker_validates_and_knows_its_tools(tool_worker) -> None:
    app = tool_worker.app
    bad = await asyncio.to_thread(
        lambda: app.send_task(RUN_TOOL_TASK, args=("celery_add", '{"a": "x"}', {}), queue="tools").get(timeout=20))
    unknown = await asyncio.to_thread(
        lambda: app.send_task(RUN_TOOL_TASK, args=("no_such_tool", "{}", {}), queue="tools").get(timeout=20))
    assert bad["error_kind"] == "invalid_arguments" and "a: Input should be a valid integer" in bad["output"]
    assert unknown["error_kind"] == "unknown_tool"


async def test_waiting_for_the_worker_does_not_block_the_event_loop(executor) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        result = await call(executor, "celery_sleep", '{"seconds": 0.2}')
    finally:
        task.cancel()
    assert result.output == "woke"
    assert ticks >= 5  # the loop kept running while the call was in flight
