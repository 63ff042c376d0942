"""Profile `POST /api/v1/jobs/` in-process on PostgreSQL: queries per request and the top frames.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_profile REDIS_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/profile_dispatch.py [--posts 300]

One online worker row (no process: the task goes to its queue and nobody runs it), one
active agent, one API key. Prints the SQL of one POST, the mean queries per POST, the POST
time p50/p99 and CPU per POST (measured without the profiler), then pyinstrument's call tree of
as many POSTs again; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import dispatch_bench_defaults, ensure_database, summary  # noqa: E402

# a connection pool, as compose's web processes run (WEB_DB_POOL_MAX_SIZE) and bench/dispatch.py
# posts with: each request takes its connection from the pool and gives it back
dispatch_bench_defaults("cp_profile", db_pool_max_size=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="pace the unprofiled POSTs at this many a second (bench/dispatch.py's paced figure: 10); 0: back to back")
    args = parser.parse_args()
    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from pyinstrument import Profiler
    from rest_framework.test import APIClient

    from agents import services as agent_services
    from agents.models import Agent
    from controlplane.models import ApiKey
    from workers.models import Job, Worker, WorkerStatus

    call_command("migrate", verbosity=0)
    Job.objects.all().delete()
    Worker.objects.all().delete()
    Agent.objects.filter(agent_id="profile-echo").delete()
    agent = agent_services.agent_create(agent_id="profile-echo", instructions="Echo.", actor="bench",
                                        llm_config={"provider": "openai", "model": "gpt-4o-mini"})
    agent_services.agent_activate(agent=agent)
    Worker.objects.create(worker_id="profile-worker@bench", hostname="bench", status=WorkerStatus.ONLINE,
                          capacity=1_000_000, last_heartbeat_at=timezone.now() + timezone.timedelta(days=1))
    _, raw_key = ApiKey.generate(name="profile", scopes=["jobs:write", "read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    def post(i: int) -> None:
        response = client.post("/api/v1/jobs/", {"agent": "profile-echo", "transport": "local", "room": f"p-{i}"}, format="json")
        assert response.status_code == 201, response.content

    for i in range(20):
        post(-i - 1)
    with CaptureQueriesContext(connection) as one:
        post(-100)
    print(f"queries of one POST: {len(one.captured_queries)}")
    for q in one.captured_queries:
        print("  ", q["sql"][:160])
    statements = 0

    def count(execute, sql, params, many, context):  # noqa: ANN001, ANN202 - Django's execute_wrapper hook
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    # first without the profiler: its sampling (and CaptureQueriesContext's debug cursor,
    # which formats every statement) inflates the Python it watches
    times = []
    with connection.execute_wrapper(count):
        cpu0 = time.process_time()
        next_at = time.perf_counter()
        for i in range(args.posts):
            if args.rate:
                next_at += 1 / args.rate
                time.sleep(max(0.0, next_at - time.perf_counter()))
            t0 = time.perf_counter()
            post(i)
            times.append((time.perf_counter() - t0) * 1000)
        cpu_ms = (time.process_time() - cpu0) * 1000 / args.posts
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for i in range(args.posts):
        post(args.posts + i)
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=False, timeline=False)[:6000])
    result = {"posts": args.posts, "rate": args.rate or None, "queries_per_post": round(statements / args.posts, 2),
              "post": summary(times), "cpu_ms_per_post": round(cpu_ms, 2), "load_average_1m": round(os.getloadavg()[0], 2)}
    print(f"queries per POST {result['queries_per_post']}  POST p50 {result['post']['p50_ms']} ms  "
          f"p99 {result['post']['p99_ms']} ms  CPU {result['cpu_ms_per_post']} ms a POST (this process; unprofiled)  "
          f"(load average {result['load_average_1m']})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
