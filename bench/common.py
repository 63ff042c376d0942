"""What the benchmark scripts share: nearest-rank percentiles, summaries, a scratch database."""
from __future__ import annotations

import statistics


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
