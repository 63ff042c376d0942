"""What the benchmark scripts share: nearest-rank percentiles, summaries, a scratch database
and a clean fleet in it."""
from __future__ import annotations

import os
import statistics


def dispatch_bench_defaults(database: str, *, db_pool_max_size: int) -> None:
    """The environment the dispatch benches run Django in, unless the caller set it: PostgreSQL
    and Redis (the production setup, so a key is required), and no queue or rate limit that
    would refuse a burst."""
    os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{database}")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/5")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
    os.environ.setdefault("JOB_QUEUE_LIMIT", "100000")
    os.environ.setdefault("DISPATCH_RATE_LIMIT_PER_MINUTE", "1000000")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DB_POOL_MAX_SIZE", str(db_pool_max_size))


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def summary(ms: list[float], *, digits: int = 2) -> dict[str, float]:
    return {"p50_ms": round(pct(ms, 50), digits), "p99_ms": round(pct(ms, 99), digits),
            "mean_ms": round(statistics.fmean(ms), digits), "n": len(ms)}


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database a bench writes to, if it is missing."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def fresh_fleet(database_url: str, *, agent_id: str) -> None:
    """Django set up on the bench's database, migrated, its Redis db emptied, and no sessions,
    jobs, workers or `agent_id` agent left from earlier runs (they would skew the per-key and
    queue counters)."""
    ensure_database(database_url)
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command

    from agents.models import Agent
    from sessions.models import AgentSession, SessionEvent
    from workers.models import Job, Worker

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    AgentSession.objects.all().delete()
    Job.objects.all().delete()
    Worker.objects.all().delete()
    Agent.objects.filter(agent_id=agent_id).delete()
    _vacuum_analyze(Job, AgentSession, SessionEvent, Worker, Agent)


def _vacuum_analyze(*models: type) -> None:
    """Leave the tables a run writes without the dead rows of earlier runs, and with planner
    statistics. Where autovacuum is off (this machine's PostgreSQL has it off) every run
    otherwise starts on more dead index entries than the last: the job end's take-next read
    ~260 buffers per job after a few runs."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:  # VACUUM runs outside a transaction: Django autocommits
        for model in models:
            cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
