"""Session event latency: worker emit → WebSocket client receive, through the real path.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dash_bench REDIS_URL=redis://127.0.0.1:6379/6 \\
        .venv/bin/python bench/events.py [--rates 100,1000] [--seconds 10]

A separate emitter process (standing in for a worker) emits events through
`DjangoEventSink` at a steady rate: each is stored in PostgreSQL (batched, gap-free seq)
and then broadcast on the Redis channel layer. A real `daphne` server runs the session
consumer; this process is the WebSocket client (`/ws/sessions/<id>/`, API-key auth). Each
event carries its emit time (wall clock, same host), so latency = receive − emit.

Reports p50/p99/max per rate and the count lost (emitted but not received, or received
twice / out of order). Goal: 0 lost, p99 < 50 ms at 1,000 events/s. The last line printed
is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import ensure_database, pct  # noqa: E402
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dash_bench")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/6")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "x" * 40)  # PostgreSQL/Redis: not embedded, a key is required
os.environ.setdefault("LOG_LEVEL", "WARNING")


WARMUP_S = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the emitter process ---------------------------------------------------------------------
def emit(session_id: str, rate: int, seconds: float) -> None:
    import django

    django.setup()
    from sessions.event_sink import DjangoEventSink

    sink = DjangoEventSink(session_id)
    # Warm-up (measured for loss, not latency): the writer thread's first database and
    # Redis connections are start-up costs, not the steady state.
    warmup = int(rate * WARMUP_S)
    total = warmup + int(rate * seconds)
    start = time.perf_counter() + 0.05
    for i in range(total):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sink.emit({"type": "realtime_event", "data": {"name": "bench", "payload": {"i": i, "t_ns": time.time_ns(), "warmup": i < warmup}}})
    ok = sink.close(timeout=60)
    print(json.dumps({"sent": total, "stored": sink.stored, "flushed": ok, "dropped": sink.dropped}), flush=True)


# --- the orchestrator and WebSocket client -----------------------------------------------------
def setup() -> tuple[str, Any]:
    import django
    from django.core.management import call_command

    ensure_database(os.environ["DATABASE_URL"])
    django.setup()
    call_command("migrate", verbosity=0)
    from agents import services as agent_services
    from agents.models import Agent
    from controlplane.models import ApiKey

    agent = Agent.objects.filter(agent_id="bench-events").first() or agent_services.agent_create(
        agent_id="bench-events", instructions="Benchmark agent.", actor="bench", llm_config={"provider": "openai"})
    _, raw = ApiKey.generate(name="bench-events", scopes=["read"])
    return raw, agent


def new_session(agent: Any) -> str:
    from sessions.models import AgentSession

    return AgentSession.objects.create(agent=agent, agent_version=agent.version, room_id="bench", status="active").session_id


def start_daphne(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DB_CONN_MAX_AGE": "60"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "server.asgi:application"],
        cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"daphne exited:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    raise SystemExit("daphne did not start")


async def measure(port: int, token: str, session_id: str, rate: int, seconds: float) -> dict[str, Any]:
    import websockets

    url = f"ws://127.0.0.1:{port}/ws/sessions/{session_id}/?after_seq=0&token={token}"
    latencies: list[float] = []
    seqs: list[int] = []
    async with websockets.connect(url, additional_headers={"Origin": f"http://127.0.0.1:{port}"}, max_size=None) as ws:
        first = json.loads(await ws.recv())
        assert first["type"] == "replay_done", first
        emitter = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--emit", session_id, str(rate), str(seconds), stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        )

        async def receive() -> None:
            while True:
                frame = json.loads(await ws.recv())
                now = time.time_ns()
                if frame["type"] != "events":
                    continue
                for e in frame["events"]:
                    seqs.append(e["seq"])
                    if not e["data"]["payload"]["warmup"]:
                        latencies.append((now - e["data"]["payload"]["t_ns"]) / 1e6)

        receiver = asyncio.create_task(receive())
        out, _ = await emitter.communicate()
        report = json.loads(out.decode().strip().splitlines()[-1])
        deadline = time.monotonic() + 10
        while len(seqs) < report["sent"] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        receiver.cancel()
    unique_in_order = seqs == list(range(1, len(seqs) + 1))
    lost = report["sent"] - len(set(seqs))
    return {
        "rate": rate, "sent": report["sent"], "stored": report["stored"], "received": len(seqs),
        "lost": lost, "duplicates": len(seqs) - len(set(seqs)), "in_order": unique_in_order,
        "p50_ms": round(pct(latencies, 50), 2) if latencies else None,
        "p99_ms": round(pct(latencies, 99), 2) if latencies else None,
        "max_ms": round(max(latencies), 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="100,1000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--emit", nargs=3, metavar=("SESSION", "RATE", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.emit:
        emit(args.emit[0], int(args.emit[1]), float(args.emit[2]))
        return

    token, agent = setup()
    log_dir = ROOT / "bench" / "output"
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    daphne = start_daphne(port, log_dir / "events-daphne.log")
    results = []
    try:
        for rate in [int(r) for r in args.rates.split(",")]:
            session_id = new_session(agent)
            result = asyncio.run(measure(port, token, session_id, rate, args.seconds))
            results.append(result)
            print(f"{rate:>5} events/s for {args.seconds:g}s: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                  f"max {result['max_ms']} ms; sent {result['sent']}, received {result['received']}, lost {result['lost']}, "
                  f"duplicates {result['duplicates']}, in order {result['in_order']}", flush=True)
    finally:
        daphne.send_signal(signal.SIGTERM)
        daphne.wait(10)
    at_1000 = next((r for r in results if r["rate"] == 1000), None)
    goal = None if at_1000 is None else bool(at_1000["lost"] == 0 and at_1000["p99_ms"] is not None and at_1000["p99_ms"] < 50)
    print(json.dumps({"bench": "events", "seconds": args.seconds, "results": results, "goal_met_at_1000": goal}))


if __name__ == "__main__":
    main()
