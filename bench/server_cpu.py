"""CPU time the bench's PostgreSQL and Redis servers have spent so far, so a bench can say what
a job costs on them too, not only in its own processes.

PostgreSQL: the postmaster's reaped children (backends that have exited) plus the live
server processes, read from /proc; only when the server runs on this machine and its data
directory is readable (None otherwise). Redis: `INFO cpu`, which any Redis reports.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def postgres_cpu_seconds(cursor: Any) -> float | None:
    """The local PostgreSQL server's CPU seconds (all its processes, those gone included)."""
    cursor.execute("SHOW data_directory")
    try:
        postmaster = int((Path(cursor.fetchone()[0]) / "postmaster.pid").read_text().split()[0])
        fields = _stat_fields(postmaster)
    except (OSError, ValueError, IndexError):  # another machine, or no permission
        return None
    # utime, stime, cutime, cstime of the postmaster: its own and its reaped children's
    total = sum(int(f) for f in fields[11:15])
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            child = _stat_fields(int(entry))
        except OSError:
            continue
        if int(child[1]) == postmaster:  # a live backend or auxiliary process
            total += int(child[11]) + int(child[12])
    return total / _TICKS


def redis_cpu_seconds(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
