"""Profile the worker's side of a job in-process on PostgreSQL: SQL statements per job, CPU per
job and the top frames, without Celery (the task body, `workers.session_runner.run_job`).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_x REDIS_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/profile_worker.py [--jobs 300] [--profile]

This process registers as one worker node running the echo entry point
(`sessions.entrypoints:echo_session`, `echo_end_after_s: 0`, as bench/dispatch.py's workers).
The jobs are dispatched first (routed to this node; their Celery messages go to a queue nobody
reads), then run one after another with `run_job`. Every statement any thread of the process
sends (the pool thread, the session loop's helper threads, the metrics timer) is counted.
Prints the statements of one job, the mean statements per job, the process CPU per job and,
with --profile, pyinstrument's call tree of the pool thread; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import dispatch_bench_defaults, fresh_fleet, summary  # noqa: E402

dispatch_bench_defaults("cp_profile", db_pool_max_size=40)
os.environ.setdefault("WORKER_ENTRY_POINT", "sessions.entrypoints:echo_session")


class StatementCounter:
    """Counts what every CursorWrapper of the process executes (all threads, all connections)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.recording: list[str] | None = None
        self.count = 0

    def install(self) -> None:
        from django.db.backends import utils

        counter = self
        original_execute, original_executemany = utils.CursorWrapper.execute, utils.CursorWrapper.executemany

        def execute(self, sql, params=None):  # type: ignore[no-untyped-def]
            counter.note(sql)
            return original_execute(self, sql, params)

        def executemany(self, sql, param_list):  # type: ignore[no-untyped-def]
            counter.note(sql)
            return original_executemany(self, sql, param_list)

        utils.CursorWrapper.execute, utils.CursorWrapper.executemany = execute, executemany

    def note(self, sql: str) -> None:
        with self.lock:
            self.count += 1
            if self.recording is not None:
                self.recording.append(sql)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="pyinstrument call tree of the pool thread")
    args = parser.parse_args()
    fresh_fleet(os.environ["DATABASE_URL"], agent_id="profile-echo")
    from agents import services as agent_services
    from sessions.agent_metrics import agent_metrics_settle
    from workers.dispatch import job_dispatch
    from workers.models import Job
    from workers.registration import worker_start, worker_stop
    from workers.session_runner import run_job

    agent = agent_services.agent_create(agent_id="profile-echo", instructions="Echo.", actor="bench",
                                        llm_config={"provider": "openai", "model": "gpt-4o-mini"})
    agent_services.agent_activate(agent=agent)
    worker_id = f"profile-{os.getpid()}@bench"
    worker_start(worker_id=worker_id, concurrency=1_000_000)
    counter = StatementCounter()
    counter.install()

    def dispatch(n: int, start: int) -> list[str]:
        return [job_dispatch(agent_id="profile-echo", room=f"p-{start + i}", transport="local",
                             metadata={"echo_end_after_s": 0}).job_id for i in range(n)]

    try:
        for job_id in dispatch(20, -1000):  # warm-up: connections, code paths, the statement caches
            assert run_job(job_id=job_id, worker_id=worker_id) == "completed"
        agent_metrics_settle()
        [one] = dispatch(1, -2000)
        time.sleep(1.2)  # past AGENT_METRICS_MIN_INTERVAL_SECONDS: the lone end recomputes in line, as in a quiet fleet
        counter.recording = []
        assert run_job(job_id=one, worker_id=worker_id) == "completed"
        agent_metrics_settle()
        statements, counter.recording = counter.recording, None
        print(f"statements of one job: {len(statements)}")
        for sql in statements:
            print("  ", " ".join(sql.split())[:150])

        ids = dispatch(args.jobs, 0)
        profiler = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
        times = []
        before, cpu0 = counter.count, time.process_time()
        if profiler:
            profiler.start()
        for job_id in ids:
            t0 = time.perf_counter()
            assert run_job(job_id=job_id, worker_id=worker_id) == "completed"
            times.append((time.perf_counter() - t0) * 1000)
        if profiler:
            profiler.stop()
        agent_metrics_settle()
        cpu = time.process_time() - cpu0
        per_job = (counter.count - before) / args.jobs
        assert not Job.objects.filter(pk__in=ids).exclude(status="completed").exists()
        kinds = Counter(" ".join(sql.split()[:3]) for sql in statements)
        if profiler:
            print(profiler.output_text(unicode=False, color=False, show_all=False, timeline=False)[:8000])
        result = {"jobs": args.jobs, "statements_per_job": round(per_job, 2), "statements_one_job": len(statements),
                  "cpu_ms_per_job": round(cpu * 1000 / args.jobs, 2), "run_job": summary(times),
                  "statement_kinds": dict(kinds), "load_average_1m": round(os.getloadavg()[0], 2)}
        print(f"statements per job {result['statements_per_job']}  CPU per job {result['cpu_ms_per_job']} ms  "
              f"run_job p50 {result['run_job']['p50_ms']} ms  (load average {result['load_average_1m']})")
        print(json.dumps(result))
    finally:
        worker_stop()


if __name__ == "__main__":
    main()
