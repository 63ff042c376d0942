"""Tool benchmarks: schema-build time per tool; inline vs Celery round-trip latency.

    .venv/bin/python bench/tools.py [--calls 1000] [--broker redis://127.0.0.1:6379/3]

Inline: `ToolExecutor.execute` on a trivial async tool (pure executor overhead: parse,
validate, RunContext, timeout, metrics) and on a sync tool (adds the thread hop).
Celery: the same call through the `tools` queue and a real worker subprocess.
The last line is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import asyncio
import enum
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Annotated, Literal, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import summary  # noqa: E402
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

import django  # noqa: E402

django.setup()

from pydantic import BaseModel, Field  # noqa: E402

from agents.tools import RunContext, function_tool  # noqa: E402
from agents.tools.bound import BoundTool  # noqa: E402
from runtime.tool_types import ToolCall, ToolInvocation  # noqa: E402
from agents.tools.executor import ToolExecutor  # noqa: E402
from agents.tools.function_tool import FunctionTool  # noqa: E402


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


class Address(BaseModel):
    street: str
    city: str
    zip_code: Optional[str] = None


def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: The city name.
    """
    return city


def book_table(
    ctx: RunContext,
    restaurant: str,
    party_size: Annotated[int, Field(description="People", ge=1, le=20)],
    time_slot: Literal["lunch", "dinner"],
    unit: Unit = Unit.C,
    notes: Optional[str] = None,
    tags: list[str] = [],  # noqa: B006
) -> str:
    """Book a table.

    Args:
        restaurant: Where.
        time_slot: When.
    """
    return restaurant


def ship(address: Address, items: list[Address], priority: bool = False) -> str:
    """Ship items to an address."""
    return "ok"


async def echo_async(text: str) -> str:
    """Echo (async)."""
    return text


def echo_sync(text: str) -> str:
    """Echo (sync)."""
    return text


def timed(fn, repeat: int) -> float:
    best = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t0)
    return statistics.median(best) * 1e6


def schema_build_us(repeat: int = 50) -> dict[str, dict[str, float]]:
    out = {}
    for fn in (get_weather, book_table, ship):
        build = timed(lambda: FunctionTool(fn), repeat)
        tool = FunctionTool(fn)
        strict = timed(lambda: (setattr(tool, "_strict_cache", None), tool.openai_schema(strict=True)), repeat)
        out[fn.__name__] = {"build_us": round(build, 1), "strict_us": round(strict, 1)}
    return out


async def roundtrip_ms(executor: ToolExecutor, name: str, n: int, warmup: int = 20) -> list[float]:
    inv = ToolInvocation(session=None, speech_handle=None, session_id="bench", agent_id="bench")
    samples = []
    for i in range(n + warmup):
        call = ToolCall(f"c{i}", name, '{"text": "hello"}')
        t0 = time.perf_counter()
        result = await executor.execute(call, inv)
        dt = (time.perf_counter() - t0) * 1000
        if result.is_error:
            raise RuntimeError(f"{name}: {result.output}")
        if i >= warmup:
            samples.append(dt)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--broker", default=os.environ.get("TOOLS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/3"))
    parser.add_argument("--no-celery", action="store_true")
    args = parser.parse_args()

    figures: dict[str, object] = {"calls": args.calls}
    schema = schema_build_us()
    figures["schema_build_us"] = schema
    for name, v in schema.items():
        print(f"schema  {name:<12} build {v['build_us']:>8.1f} µs   strict variant {v['strict_us']:>7.1f} µs")

    a = function_tool(echo_async, name="bench_echo_async", register=False)
    s = function_tool(echo_sync, name="bench_echo_sync", register=False)
    inline = ToolExecutor([BoundTool(a, "inline", 5000), BoundTool(s, "inline", 5000)])
    for label, name in (("inline_async", "bench_echo_async"), ("inline_sync", "bench_echo_sync")):
        stats = summary(asyncio.run(roundtrip_ms(inline, name, args.calls)), digits=4)
        figures[label] = stats
        print(f"{label:<13} p50 {stats['p50_ms']:.4f} ms  p99 {stats['p99_ms']:.4f} ms  ({args.calls} calls)")

    if not args.no_celery:
        from agents.tools.remote import CeleryToolRunner
        from tests.tools.tool_worker import ToolWorker

        with ToolWorker(broker_url=args.broker, tool_modules=["bench.tools_celery"]) as worker:
            from bench.tools_celery import bench_echo_celery

            celery_ex = ToolExecutor([BoundTool(bench_echo_celery, "celery", 10_000)],
                                     celery_runner=CeleryToolRunner(app=worker.app))
            stats = summary(asyncio.run(roundtrip_ms(celery_ex, "bench_echo_celery", args.calls)), digits=4)
        figures["celery"] = stats
        print(f"{'celery':<13} p50 {stats['p50_ms']:.4f} ms  p99 {stats['p99_ms']:.4f} ms  ({args.calls} calls)")

    goal = figures["inline_async"]["p50_ms"] < 0.2  # type: ignore[index]
    figures["inline_overhead_goal_met"] = goal
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
