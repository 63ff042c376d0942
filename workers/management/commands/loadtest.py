"""`manage.py loadtest AGENT --calls N --wav PATH --duration S [--ramp R/s]`: simulated callers.

Dispatches N load-test calls through the real API of a running deployment (`--url`, the
embedded server by default), starting `--ramp` calls a second; each caller speaks the WAV
into its session at real-time pace over the audio socket, again after every reply, until
`--duration` seconds after its dispatch, then cancels its job. Shows a progress line while
it runs; prints calls started/failed, dispatch latency, reply latency p50/p95/p99, agent
frame lag p99 and events lost; the last line is one JSON object.

Without `--api-key` (or LOADTEST_API_KEY) a temporary key with the `loadtest` scope is made
in this deployment's database and revoked at the end. Without `--wav` the demo question
("What's the weather in Paris?") is spoken by espeak-ng.

`--transport livekit` dispatches LiveKit calls instead: each caller joins its job's room from
this process as a `livekit.rtc` participant (`workers/simulated_caller_livekit.py`), with a
token minted from `--livekit-api-key`/`--livekit-api-secret` (default: LIVEKIT_API_KEY and
LIVEKIT_API_SECRET) for `--livekit-url` (LIVEKIT_URL). The figures are measured the same way.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.models import ApiKey
from controlplane.scopes import JOBS_WRITE, LOADTEST, READ, SESSIONS_CONTROL
from runtime.audio import read_wav, resample_to
from workers.simulated_caller import AUDIO_SOCKET, RATE, CallerTransport, CallPlan, CallResult, run_call
from workers.simulated_caller_livekit import LiveKitCallerTransport

DEMO_QUESTION = "What's the weather in Paris?"


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))], 1)


def caller_speech(path: Path) -> np.ndarray:
    """A mono PCM16 WAV at any rate → int16 at the caller's 16 kHz."""
    try:
        samples, rate, channels = read_wav(str(path))
    except (OSError, ValueError, EOFError, wave.Error) as exc:
        raise CommandError(f"--wav: cannot read {path}: {exc}") from None
    if channels != 1:
        raise CommandError(f"--wav: {path} has {channels} channels; the caller speaks mono")
    if len(samples) == 0:
        raise CommandError(f"--wav: {path} holds no audio")
    return resample_to(samples, rate, RATE).astype(np.int16)


def demo_question_wav(directory: Path) -> Path:
    if shutil.which("espeak-ng") is None:
        raise CommandError("no --wav given and espeak-ng is not installed to speak the demo question")
    path = directory / "demo-question.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(path), DEMO_QUESTION], check=True, capture_output=True)
    return path


def caller_transport(o: dict[str, Any]) -> CallerTransport:
    if o["transport"] == "local":
        return AUDIO_SOCKET
    url = o["livekit_url"] or settings.LIVEKIT_URL
    key = o["livekit_api_key"] or settings.LIVEKIT_API_KEY
    secret = o["livekit_api_secret"] or settings.LIVEKIT_API_SECRET
    missing = [name for name, value in (("--livekit-url", url), ("--livekit-api-key", key),
                                        ("--livekit-api-secret", secret)) if not value]
    if missing:
        raise CommandError(f"--transport livekit needs {', '.join(missing)} (or LIVEKIT_URL, LIVEKIT_API_KEY, "
                           "LIVEKIT_API_SECRET)")
    return LiveKitCallerTransport(url=url, api_key=key, api_secret=secret)


class Command(BaseCommand):
    help = "Load-test an agent with simulated callers through the real API and audio sockets."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("agent")
        parser.add_argument("--calls", type=int, default=10)
        parser.add_argument("--wav", type=Path, help="what each caller says (mono PCM16); default: the demo question by espeak-ng")
        parser.add_argument("--duration", type=float, default=30.0, help="seconds each call lasts from its dispatch")
        parser.add_argument("--ramp", type=float, default=10.0, help="calls started per second")
        parser.add_argument("--url", default=os.environ.get("LOADTEST_URL", "http://127.0.0.1:8000"))
        parser.add_argument("--api-key", default=os.environ.get("LOADTEST_API_KEY", ""))
        parser.add_argument("--transport", choices=["local", "livekit"], default="local",
                            help="local: the session's audio socket; livekit: a participant in the job's LiveKit room")
        parser.add_argument("--livekit-url", default="", help="with --transport livekit; default LIVEKIT_URL")
        parser.add_argument("--livekit-api-key", default="", help="default LIVEKIT_API_KEY")
        parser.add_argument("--livekit-api-secret", default="", help="default LIVEKIT_API_SECRET (never printed)")

    def handle(self, *args: Any, **o: Any) -> None:
        if o["calls"] < 1:
            raise CommandError("--calls must be at least 1")
        if o["duration"] <= 0 or o["ramp"] <= 0:
            raise CommandError("--duration and --ramp must be positive")
        transport = caller_transport(o)
        with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
            speech = caller_speech(o["wav"] or demo_question_wav(Path(tmp)))
        temporary = None
        raw_key = o["api_key"]
        if not raw_key:
            temporary, raw_key = ApiKey.generate(name=f"loadtest-{secrets.token_hex(3)}",
                                                 scopes=[JOBS_WRITE, READ, SESSIONS_CONTROL, LOADTEST])
        httpx_logger = logging.getLogger("httpx")
        level = httpx_logger.level
        httpx_logger.setLevel(logging.WARNING)  # one INFO line per request would bury the progress line
        try:
            summary = asyncio.run(self._run(o, speech, raw_key, transport))
        finally:
            httpx_logger.setLevel(level)  # the process may go on (call_command): leave its logging as found
            if temporary is not None:
                temporary.revoke()
        self._report(summary)

    async def _run(self, o: dict[str, Any], speech: np.ndarray, raw_key: str, transport: CallerTransport) -> dict[str, Any]:
        prefix = f"loadtest-{secrets.token_hex(3)}"
        results = [CallResult() for _ in range(o["calls"])]
        plans = [CallPlan(base_url=o["url"], api_key=raw_key, agent=o["agent"], speech=speech, duration_s=o["duration"],
                          room=f"{prefix}-{i}") for i in range(o["calls"])]
        t0 = time.monotonic()
        tasks = []
        progress = asyncio.create_task(self._progress(results, t0))
        for i, (plan, result) in enumerate(zip(plans, results)):
            await asyncio.sleep(max(0.0, t0 + i / o["ramp"] - time.monotonic()))
            tasks.append(asyncio.create_task(run_call(plan, result, transport)))
        await asyncio.gather(*tasks)
        progress.cancel()
        sys.stderr.write("\n")
        return self._summary(o, results, time.monotonic() - t0)

    async def _progress(self, results: list[CallResult], t0: float) -> None:
        while True:
            await asyncio.sleep(1.0)
            started = sum(r.started for r in results)
            failed = sum(bool(r.error) for r in results)
            replies = sum(len(r.reply_ms) for r in results)
            sys.stderr.write(f"\r{time.monotonic() - t0:6.1f} s  calls started {started}/{len(results)}  failed {failed}  "
                             f"replies {replies}   ")
            sys.stderr.flush()

    def _summary(self, o: dict[str, Any], results: list[CallResult], seconds: float) -> dict[str, Any]:
        replies = [ms for r in results for ms in r.reply_ms]
        lags = [ms for r in results for ms in r.frame_lag_ms]
        starts = [r.start_ms for r in results if r.start_ms is not None]
        posts = [r.post_ms for r in results if r.post_ms is not None]
        errors = sorted({r.error for r in results if r.error})
        return {
            "agent": o["agent"], "url": o["url"], "transport": o["transport"], "calls": len(results), "duration_s": o["duration"], "ramp_per_s": o["ramp"],
            "seconds": round(seconds, 1),
            "calls_started": sum(r.started for r in results), "calls_failed": sum(bool(r.error) for r in results),
            "calls_answered": sum(bool(r.reply_ms) for r in results),
            "post_ms": {"p50": pct(posts, 50), "p99": pct(posts, 99)},
            "dispatch_to_live_ms": {"p50": pct(starts, 50), "p99": pct(starts, 99)},
            "reply_latency_ms": {"p50": pct(replies, 50), "p95": pct(replies, 95), "p99": pct(replies, 99), "n": len(replies)},
            "missing_replies": sum(r.missing_replies for r in results),
            "agent_frame_lag_ms": {"p99": pct(lags, 99), "n": len(lags)},
            "events_stored": sum(r.events_stored for r in results), "events_received": sum(r.events_received for r in results),
            "events_lost": sum(r.events_lost for r in results), "events_duplicated": sum(r.events_duplicated for r in results),
            "errors": errors[:5],
            "settings_embedded": settings.EMBEDDED,
        }

    def _report(self, s: dict[str, Any]) -> None:
        w = self.stdout.write
        w(f"calls started {s['calls_started']}/{s['calls']}, failed {s['calls_failed']} ({s['seconds']} s)")
        w(f"dispatch: POST p50 {s['post_ms']['p50']} ms p99 {s['post_ms']['p99']} ms; "
          f"dispatch → session live p50 {s['dispatch_to_live_ms']['p50']} ms p99 {s['dispatch_to_live_ms']['p99']} ms")
        r = s["reply_latency_ms"]
        w(f"reply latency (end of caller speech → first agent audio): p50 {r['p50']} ms p95 {r['p95']} ms p99 {r['p99']} ms "
          f"({r['n']} replies, {s['missing_replies']} missing)")
        w(f"agent frame lag p99 {s['agent_frame_lag_ms']['p99']} ms ({s['agent_frame_lag_ms']['n']} frames)")
        w(f"events stored {s['events_stored']}, received {s['events_received']}, lost {s['events_lost']}, "
          f"duplicated {s['events_duplicated']}")
        for error in s["errors"]:
            w(f"error: {error}")
        w(json.dumps(s))
