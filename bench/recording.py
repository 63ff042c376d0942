"""Call recording memory: process RSS against the call's length.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_16b_bench \\
        flock /tmp/bench.lock .venv/bin/python bench/recording.py [--minutes 1,5,15,30]

Feeds the production `CallRecorder` (sessions/recording.py) a call of alternating user
(16 kHz) and agent (24 kHz, resampled) speech in 20 ms frames, with a simulated clock so a
30-minute call takes seconds; every frame goes through the same queue, resampler, mixer
and WAV spool file as in a live call, and `close()` stores it through the storage API.
Prints, per call length, the RSS peak during the call, the RSS growth over the baseline,
the most audio held in memory at once, and what holding the whole call would cost. Goal:
RSS growth flat (within a few MB) from 1 to 30 minutes. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

from bench.common import ensure_database  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_call(minutes: float, session_id: str) -> dict[str, float]:
    from sessions.recording import CallRecorder

    clock = Clock()
    call = CallRecorder(session_id, clock=clock, autostart=False)
    user = (np.sin(np.arange(320) * 2 * np.pi * 440 / 16000) * 8000).astype(np.int16)
    agent = (np.sin(np.arange(480) * 2 * np.pi * 220 / 24000) * 8000).astype(np.int16)
    peak = rss_mb()
    frames = int(minutes * 60 / 0.02)
    for i in range(frames):
        clock.now += 0.02
        if (i // 150) % 2 == 0:
            call.user_audio(user, 16000)
        else:
            call.agent_audio(agent, 24000)
        if i % 5 == 4:  # the writer thread's 100 ms pump
            call.pump()
        if i % 3000 == 0:
            peak = max(peak, rss_mb())
    recording = call.close()
    assert recording is not None
    return {"minutes": minutes, "rss_peak_mb": round(max(peak, rss_mb()), 1),
            "held_max_kb": round(call.max_mixer_samples * 2 / 1024, 1), "queued_max_frames": call.max_queued_seen,
            "file_mb": round(recording.size_bytes / 2**20, 1), "in_memory_would_be_mb": round(frames * 640 / 2**20, 1),
            "dropped": call.dropped}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", default="1,5,15,30")
    args = parser.parse_args()
    lengths = [float(m) for m in args.minutes.split(",")]

    scratch = tempfile.mkdtemp(prefix="recording-bench-")
    os.environ["MEDIA_ROOT"] = f"{scratch}/media"
    os.environ["RECORDINGS_SPOOL_DIR"] = f"{scratch}/spool"
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from agents.models import Agent
    from sessions.models import AgentSession

    agent, _ = Agent.objects.get_or_create(agent_id="bench-recorder", defaults={"instructions": "bench"})

    def session_id() -> str:
        return AgentSession.objects.create(agent=agent, agent_version=0, room_id="bench").session_id

    run_call(0.2, session_id())  # warm-up: imports, resampler, first allocations
    baseline = rss_mb()
    rows = []
    print(f"baseline RSS {baseline:.1f} MB")
    print(f"{'minutes':>8} {'rss peak MB':>12} {'growth MB':>10} {'held KB':>8} {'queued':>7} {'file MB':>8} "
          f"{'whole call in RAM MB':>21}")
    for minutes in lengths:
        row = run_call(minutes, session_id())
        row["rss_growth_mb"] = round(row["rss_peak_mb"] - baseline, 1) + 0.0
        rows.append(row)
        print(f"{minutes:>8g} {row['rss_peak_mb']:>12.1f} {row['rss_growth_mb']:>10.1f} {row['held_max_kb']:>8.1f} "
              f"{row['queued_max_frames']:>7} {row['file_mb']:>8.1f} {row['in_memory_would_be_mb']:>21.1f}")
    growth = [r["rss_growth_mb"] for r in rows]
    print(json.dumps({"bench": "recording_rss", "baseline_rss_mb": round(baseline, 1), "calls": rows,
                      "rss_growth_spread_mb": round(max(growth) - min(growth), 1),
                      "longest_vs_shortest_file_ratio": round(rows[-1]["file_mb"] / max(rows[0]["file_mb"], 0.1), 1)}))


if __name__ == "__main__":
    main()
