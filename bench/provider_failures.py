"""Benchmark: how fast the runtime gets out of a stalled provider.

    .venv/bin/python bench/provider_failures.py [--runs 10]

Against the OpenAI double (in this process, on loopback), a text session whose LLM call
stalls for 30 s. Prints, p50/max over the runs:
1. llm timeout: the user's text → the `error` event of kind `timeout`, with `timeout_s`
   0.4 (goal < 5 s: the timeout fires, the stall is never waited out);
2. stop while stalled: `session.stop()` → it returns, the LLM call still stalled
   (goal < 3 s);
3. double stop: `OpenAIDouble.stop()` → a stalled SDK request it was serving returns
   (goal < 5 s: the other suites rely on it to end their stalls).
The tests assert the behaviour (the error, the stop, the release); the timing goals live
here because wall time on a shared machine is noise. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import summary  # noqa: E402
from runtime import AgentSession, SessionOptions  # noqa: E402
from runtime.provider_configs import parse_provider_config  # noqa: E402
from runtime.providers import build_llm  # noqa: E402
from runtime.transports import LocalTransport  # noqa: E402
from tests.doubles.openai_server import OpenAIDouble, Reply  # noqa: E402

KEY_ENV = "BENCH_OPENAI_KEY"
GOALS_MS = {"llm_timeout": 5000.0, "stop_while_stalled": 3000.0, "double_stop": 5000.0}


class Sink:
    """Keeps the events; `wait` returns the first of a type as it arrives."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.arrived = asyncio.Event()

    def emit(self, event: Any) -> None:
        self.events.append(event)
        self.arrived.set()

    async def wait(self, type_: str, count: int = 1) -> Any:
        while len(found := [e for e in self.events if e.type == type_]) < count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 30)
        return found[count - 1]


def stalled_session(api: OpenAIDouble, sink: Sink, *, timeout_s: float) -> AgentSession:
    api.chat.push(Reply.stall(30))
    llm = build_llm(parse_provider_config("llm", {"provider": "openai", "base_url": api.base_url, "api_key_env": KEY_ENV,
                                                  "model": "gpt-4o-mini", "timeout_s": timeout_s, "max_retries": 0}))
    return AgentSession(options=SessionOptions(instructions="You are a bench agent.", session_id="bench"),
                        llm=llm, stt=None, tts=None, sink=sink, transport=LocalTransport())


async def llm_timeout_ms(api: OpenAIDouble) -> float:
    sink = Sink()
    session = stalled_session(api, sink, timeout_s=0.4)
    await session.start()
    started = time.perf_counter()
    session.push_text("hello")
    err = await sink.wait("error")
    took = (time.perf_counter() - started) * 1000
    assert err.error_kind == "timeout", err
    await session.stop("bench")
    return took


async def stop_while_stalled_ms(api: OpenAIDouble) -> float:
    sink = Sink()
    session = stalled_session(api, sink, timeout_s=30)
    await session.start()
    session.push_text("hello")
    await sink.wait("agent_state_changed", count=2)  # listening → thinking: the call is out
    started = time.perf_counter()
    await asyncio.wait_for(session.stop("operator"), 30)
    return (time.perf_counter() - started) * 1000


async def double_stop_ms() -> float:
    api = OpenAIDouble().start()
    api.chat.push(Reply.stall(60))
    client = AsyncOpenAI(base_url=api.base_url, api_key="k", max_retries=0, timeout=30)
    call = asyncio.create_task(client.chat.completions.create(model="m", messages=[]))
    while not api.requests:
        await asyncio.sleep(0.005)
    started = time.perf_counter()
    await asyncio.to_thread(api.stop)
    await asyncio.wait({call}, timeout=30)
    took = (time.perf_counter() - started) * 1000
    assert call.done(), "the stalled request outlived the double"
    call.exception()  # retrieved: the request failed as the connection went away
    await client.close()
    return took


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    os.environ.setdefault(KEY_ENV, "sk-bench")
    print(f"provider failure bench - python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load avg "
          f"{os.getloadavg()[0]:.1f}; {args.runs} runs each")
    figures: dict[str, list[float]] = {name: [] for name in GOALS_MS}
    with OpenAIDouble() as api:
        for _ in range(args.runs):
            figures["llm_timeout"].append(await llm_timeout_ms(api))
            figures["stop_while_stalled"].append(await stop_while_stalled_ms(api))
    for _ in range(args.runs):
        figures["double_stop"].append(await double_stop_ms())
    results = {}
    for name, ms in figures.items():
        s = summary(ms)
        s["max_ms"] = round(max(ms), 2)
        s["goal_ms"] = GOALS_MS[name]
        s["ok"] = s["max_ms"] < GOALS_MS[name]
        results[name] = s
        print(f"  {name:20s} p50 {s['p50_ms']:8.1f} ms  max {s['max_ms']:8.1f} ms  "
              f"[goal < {GOALS_MS[name]:.0f} ms: {'OK' if s['ok'] else 'MISSED'}]")
    print(json.dumps({"bench": "provider_failures", "runs": args.runs, **results}))


if __name__ == "__main__":
    asyncio.run(main())
