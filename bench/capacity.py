"""Capacity of one worker process hosting real calls: N concurrent calls with simulated callers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/capacity_bench REDIS_URL=redis://127.0.0.1:6379/7 \\
        .venv/bin/python bench/capacity.py [--ns 10,100,200,400] [--duration 30] [--ramp 40] [--profile-n 400] [--gc-pauses]

The production path, on this machine: PostgreSQL, Redis (broker and channel layer), ONE
`manage.py start` worker process (Celery threads pool, the session loop, the production event
sink), a daphne web process, and the OpenAI double (`tests/doubles/openai_server.py`, its own
process) as LLM, STT and TTS. Each call is dispatched through `POST /api/v1/jobs/` with job
metadata `simulated_caller` (`sessions.simulated_callers`): inside the worker a caller speaks
the demo question (espeak-ng) at real-time pace, listens to the reply, asks again, and hangs
up after `--duration` s, storing a `caller_report`. This process is the dashboard: one event
WebSocket (`/ws/sessions/{id}/`) per session, i.e. every session watched, plus `/ws/fleet/`.

Per N: input / output frame lag p50/p99 (the callers' histograms merged), caller reply latency
p50/p99 (end of caller speech → first audible agent frame), event → WebSocket latency p50/p99
(the event's `at` → received here, live events only), events stored vs received (lost,
duplicated), and the worker's CPU % (of one core) and RSS per call while all N calls are up.
Goals (issue 13): at N = 400 frame lag p99 < 20 ms, reply p99 within 50 ms of N = 10's,
event → WebSocket p99 < 100 ms, 0 lost or duplicated. `--profile-n N` records the worker and the
web process with py-spy (`--gil`, non-blocking) for `--profile-seconds` while N calls are up and prints their top
frames; `--gc-pauses` reports the worker's cycle-collector pauses per generation per round. Progress lines go to stdout as it runs; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import fresh_fleet, pct  # noqa: E402

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/capacity_bench")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/7")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "x" * 40)  # PostgreSQL/Redis: not embedded, a key is required
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ["JOB_QUEUE_LIMIT"] = "100000"
os.environ["DISPATCH_RATE_LIMIT_PER_MINUTE"] = "1000000"
KEY_ENV = "CAPACITY_OPENAI_KEY"
os.environ[KEY_ENV] = "sk-capacity-bench"
os.environ["PROVIDER_ALLOWED_HOSTS"] = "127.0.0.1"  # the double, on loopback, allowed by name
os.environ["CREDENTIAL_ENV_ALLOWLIST"] = f"OPENAI_API_KEY,{KEY_ENV}"

AGENT = "capacity"
QUESTION = "What's the weather in Paris?"
ANSWER = "It is sunny in Paris today."
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


# --- the processes ------------------------------------------------------------------------------
DOUBLE_SCRIPT = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from tests.doubles.openai_server import OpenAIDouble
api = OpenAIDouble(default_chat_text={ANSWER!r}, default_transcript="what is the weather in paris",
                   speech_ms_per_char=50.0).start()
api.requests = type("Discard", (list,), {{"append": lambda self, item: None}})()  # a long run keeps no bodies
print(api.port, flush=True)
while True:
    time.sleep(3600)
"""


def start_double(log_dir: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", DOUBLE_SCRIPT], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=(log_dir / "capacity-double.log").open("wb"), text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


GC_PAUSES_FILE = ROOT / "var" / "bench" / "capacity-gc-pauses.json"


def start_worker(capacity: int, log_dir: Path, db_pool: int, gc_pauses: bool = False,
                 gc_young: int = 0) -> subprocess.Popen[bytes]:
    # With a pool (as docker-compose runs workers) the worker holds at most `db_pool` PostgreSQL
    # connections however many sessions start or end together; without one, each Celery thread
    # kept its own for CONN_MAX_AGE and N >= 100 ran the server out of connections.
    env = {**os.environ, "WORKER_MAX_CONCURRENT_JOBS": str(capacity), "WORKER_HEARTBEAT_SECONDS": "2", "PYTHONPATH": str(ROOT),
           "DB_POOL_MAX_SIZE": str(db_pool)}
    if gc_pauses:  # bench/gc_probe/sitecustomize.py records the worker's collections (gc.callbacks)
        GC_PAUSES_FILE.unlink(missing_ok=True)
        env.update(PYTHONPATH=f"{ROOT / 'bench' / 'gc_probe'}{os.pathsep}{ROOT}", CAPACITY_GC_PAUSES_FILE=str(GC_PAUSES_FILE),
                   CAPACITY_ROOT=str(ROOT), **({"CAPACITY_GC_YOUNG": str(gc_young)} if gc_young else {}))
    return subprocess.Popen([sys.executable, "manage.py", "start", "--name", f"capacity-{os.getpid()}@bench",
                             "--concurrency", str(capacity)], cwd=ROOT, env=env,
                            stdout=(log_dir / "capacity-worker.log").open("wb"), stderr=subprocess.STDOUT)


def start_web(port: int, log_dir: Path, db_pool: int) -> subprocess.Popen[bytes]:
    # the consumers' database work runs on executor threads: a pool bounds their connections too
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DB_POOL_MAX_SIZE": str(db_pool)}
    proc = subprocess.Popen([sys.executable, "-m", "controlplane.web_server", "-b", "127.0.0.1", "-p", str(port),
                             "server.asgi:application"], cwd=ROOT, env=env,
                            stdout=(log_dir / "capacity-web.log").open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the web process did not serve /health/live")


def gc_pauses_now() -> dict[str, Any] | None:
    try:
        return json.loads(GC_PAUSES_FILE.read_text())
    except (OSError, ValueError):
        return None


def gc_pauses_between(before: dict[str, Any] | None, after: dict[str, Any] | None, started_at: float) -> dict[str, Any] | None:
    """Per generation, the collections of one round: count, total ms, collections over 20 ms;
    the longest pause is the worker's longest so far (a maximum does not subtract)."""
    if after is None:
        return None
    before = before or {}
    out: dict[str, Any] = {"round_started_at": started_at}
    for gen, a in after.items():
        if gen == "round_started_at":
            continue
        if gen == "slow":  # the worker's last long pauses: (unix time, generation, ms, CPU ms, thread)
            out["slow"] = [p for p in a if p[0] >= started_at]
            continue
        b = before.get(gen, {})
        out[gen] = {"collections": a["collections"] - b.get("collections", 0),
                    "total_ms": round(a["total_ms"] - b.get("total_ms", 0.0), 1),
                    "cpu_ms": round(a["cpu_ms"] - b.get("cpu_ms", 0.0), 1),
                    "over_20ms": a["over_20ms"] - b.get("over_20ms", 0), "max_ms_so_far": a["max_ms"]}
    return out


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def proc_rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


# --- the dashboard side: one event socket per session --------------------------------------------
class Watch:
    """Every event received on one session's socket, and how late the live ones came."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.latency_ms: list[float] = []
        self.latency_at: list[float] = []  # time.monotonic() each latency_ms was taken
        self.stopped = asyncio.Event()
        self.reconnects = 0
        self.error = ""


async def watch_session(base: str, key: str, session_id: str, watch: Watch, stop: asyncio.Event) -> None:
    """As the dashboard page does: a dropped or refused socket reconnects with `after_seq`
    (the last seq it has), so what it missed is replayed from the database."""
    import websockets

    while not stop.is_set() and not watch.stopped.is_set():
        after = max(watch.seqs, default=0)
        url = f"ws://{base.split('://', 1)[1]}/ws/sessions/{session_id}/?after_seq={after}"
        try:
            async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {key}"}, origin=base,
                                          max_size=None, open_timeout=30) as ws:
                live = False
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    now = time.time()
                    message = json.loads(raw)
                    if message.get("type") == "replay_done":
                        live = True
                    elif message.get("type") == "events":
                        for event in message["events"]:
                            watch.seqs.append(event["seq"])
                            if live:
                                watch.latency_ms.append((now - datetime.fromisoformat(event["at"]).timestamp()) * 1000)
                                watch.latency_at.append(time.monotonic())
                            if event["type"] == "call_ended":
                                watch.stopped.set()
                return
        except Exception as exc:  # noqa: BLE001 - counted, then reconnect
            watch.reconnects += 1
            watch.error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.5)


async def watch_fleet(base: str, key: str, counts: collections.Counter[str], stop: asyncio.Event) -> None:
    import websockets

    async with websockets.connect(f"ws://{base.split('://', 1)[1]}/ws/fleet/", origin=base, max_size=None,
                                  additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        while not stop.is_set():
            try:
                counts[json.loads(await asyncio.wait_for(ws.recv(), 0.5)).get("kind", "?")] += 1
            except TimeoutError:
                continue


# --- one round: N calls ----------------------------------------------------------------------------
async def round_of(n: int, args: argparse.Namespace, base: str, key: str, worker_pid: int) -> dict[str, Any]:
    import httpx
    from asgiref.sync import sync_to_async

    from sessions.models import AgentSession, SessionEvent
    from workers.models import Job

    caller = {"text": QUESTION, "duration_s": args.duration}
    stop = asyncio.Event()
    watches: dict[str, Watch] = {}
    watchers: list[asyncio.Task[None]] = []
    sessions: dict[str, str] = {}  # job → session
    pending: dict[str, asyncio.Future[str]] = {}  # job → its session id, once the worker opened it
    failures: list[str] = []
    post_ms: list[float] = []
    samples: list[tuple[float, float, float, int, dict[str, float]]] = []  # (time, worker cpu s, rss MB, live calls, others' cpu s)
    db_connections: list[int] = []  # the bench database's server connections, sampled each second
    profiles: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}  # process name → (py-spy, its output)

    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60,
                                 limits=httpx.Limits(max_connections=20)) as client:

        async def call(i: int) -> None:
            t0 = time.monotonic()
            response = await client.post("/api/v1/jobs/", json={"agent": AGENT, "room": f"cap-{n}-{i}", "transport": "local",
                                                                 "metadata": {"simulated_caller": caller}})
            post_ms.append((time.monotonic() - t0) * 1000)
            if response.status_code != 201:
                failures.append(f"dispatch refused: {response.status_code} {response.text[:200]}")
                return
            job_id = response.json()["job_id"]
            # the session id from the database (one query for every pending call, below): this
            # process's polling must not load the web process it measures
            found = asyncio.get_running_loop().create_future()
            pending[job_id] = found
            try:
                session_id = await asyncio.wait_for(found, 60)
            except TimeoutError:
                failures.append("no session within 60 s")
                return
            except RuntimeError as exc:
                failures.append(str(exc))
                return
            sessions[job_id] = session_id
            watch = watches[session_id] = Watch()
            watchers.append(asyncio.create_task(watch_session(base, key, session_id, watch, stop)))

        def live_sessions(job_ids: list[str]) -> list[tuple[str, str, str, str]]:
            return list(AgentSession.objects.filter(job_id__in=job_ids).values_list("job_id", "session_id", "job__status",
                                                                                    "job__failure_reason"))

        async def resolve() -> None:
            while not stop.is_set():
                if pending:
                    for job_id, session_id, status, reason in await sync_to_async(live_sessions)(list(pending)):
                        future = pending.pop(job_id, None)
                        if future is not None and not future.done():
                            if status in ("failed", "cancelled", "completed"):
                                future.set_exception(RuntimeError(f"job {status} before its session: {reason}"))
                            else:
                                future.set_result(session_id)
                await asyncio.sleep(0.1)

        async def sample() -> None:
            while not stop.is_set():
                live = await sync_to_async(Job.objects.filter(pk__in=list(sessions), status="running").count)()
                db_connections.append(await sync_to_async(database_connections)())
                others = {name: proc_cpu_s(pid) for name, pid in args.pids.items()}
                samples.append((time.monotonic(), proc_cpu_s(worker_pid), proc_rss_mb(worker_pid), live, others))
                await asyncio.sleep(1.0)

        rss_before = proc_rss_mb(worker_pid)
        gc_before, round_started_at = gc_pauses_now(), time.time()
        t_start = time.monotonic()
        sampler = asyncio.create_task(sample())
        resolver = asyncio.create_task(resolve())
        starts = []
        for i in range(n):
            await asyncio.sleep(max(0.0, t_start + i / args.ramp - time.monotonic()))
            starts.append(asyncio.create_task(call(i)))
        # profile the steady state: a few seconds after the last dispatch, not after a failing
        # call's 60 s wait for its session (the calls may be over by then)
        await asyncio.wait(starts, timeout=min(5.0, args.duration / 3))
        if args.profile_n == n:
            # the worker, and the web process (the dashboard's sockets) that shares its cores
            for name, pid in (("worker", worker_pid), ("web", args.pids["web"])):
                path = ROOT / "var" / "bench" / f"capacity-profile-{name}-{n}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                profiles[name] = (subprocess.Popen(
                    [str(ROOT / ".venv" / "bin" / "py-spy"), "record", "--pid", str(pid), "--gil", "--nonblocking",
                     "--format", "raw", "--duration", str(args.profile_seconds), "--rate", "100", "--output", str(path)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), path)
        await asyncio.gather(*starts)
        say(f"N={n}: {len(sessions)} sessions live, {len(failures)} failed ({time.monotonic() - t_start:.1f} s)")
        # progress while the calls are on; done when every job has ended
        job_ids = list(sessions)
        while True:
            open_jobs = await sync_to_async(
                Job.objects.filter(pk__in=job_ids).exclude(status__in=["completed", "failed", "cancelled"]).count)()
            received = sum(len(w.seqs) for w in watches.values())
            say(f"N={n}: {time.monotonic() - t_start:5.1f} s  calls on {open_jobs}/{len(job_ids)}  events received {received}")
            if not open_jobs or time.monotonic() - t_start > args.duration + n / args.ramp + 90:
                break
            await asyncio.sleep(3.0)
        # the sockets get the last events (session_stopped, call_ended), bounded
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(w.stopped.is_set() for w in watches.values()):
            await asyncio.sleep(0.25)
        stop.set()
        await asyncio.gather(*watchers, sampler, resolver, return_exceptions=True)
    for spy, _ in profiles.values():
        spy.wait(args.profile_seconds + 30)
    time.sleep(1.1 if args.gc_pauses or args.gc_young else 0)  # the probe's next dump holds the round's last collections
    gc_round = gc_pauses_between(gc_before, gc_pauses_now(), round_started_at) if args.gc_pauses or args.gc_young else None

    def stored() -> tuple[dict[str, list[int]], list[dict[str, Any]], dict[str, int]]:
        seqs: dict[str, list[int]] = collections.defaultdict(list)
        reports = []
        for session_id, seq, type_, data in SessionEvent.objects.filter(session_id__in=list(watches)).values_list(
                "session_id", "seq", "type", "data"):
            seqs[session_id].append(seq)
            if type_ == "caller_report":
                reports.append(data)
        statuses = collections.Counter(Job.objects.filter(pk__in=job_ids).values_list("status", flat=True))
        return seqs, reports, dict(statuses)

    stored_seqs, reports, job_statuses = await sync_to_async(stored)()
    lost = duplicated = stored_total = received_total = 0
    for session_id, watch in watches.items():
        have = set(watch.seqs)
        stored_total += len(stored_seqs[session_id])
        received_total += len(have)
        lost += len(set(stored_seqs[session_id]) - have)
        duplicated += len(watch.seqs) - len(have)
    latency = [ms for w in watches.values() for ms in w.latency_ms]
    # the same, only for events received while every call was up (not the ramp, not the hang-ups):
    # where a late tail comes from
    full_window = [s[0] for s in samples if s[3] >= len(sessions)]
    steady = [ms for w in watches.values() for ms, at in zip(w.latency_ms, w.latency_at)
              if full_window and full_window[0] <= at <= full_window[-1]]
    replies = [ms for r in reports for ms in r["reply_ms"]]
    edges = reports[0]["lag_edges_ms"] if reports else []

    def merged(key: str) -> list[int]:
        total = [0] * len(edges)
        for r in reports:
            total = [a + b for a, b in zip(total, r[key])]
        return total

    from runtime.simulated_caller import histogram_pct

    in_counts, out_counts = merged("in_lag_counts"), merged("out_lag_counts")
    full = [s for s in samples if s[3] >= len(sessions)]  # every call that went live is up
    others_cpu: dict[str, float] = {}
    if len(full) >= 2:
        span = full[-1][0] - full[0][0]
        cpu = (full[-1][1] - full[0][1]) / span * 100
        rss = max(s[2] for s in full)
        others_cpu = {name: round((full[-1][4][name] - full[0][4][name]) / span * 100, 1) for name in full[0][4]}
    else:
        cpu, rss = None, max((s[2] for s in samples), default=rss_before)
    figures = {
        "n": n, "sessions": len(watches), "failed": len(failures), "jobs": job_statuses, "errors": sorted(set(failures))[:3],
        "post_ms": {"p50": round(pct(post_ms, 50), 1), "p99": round(pct(post_ms, 99), 1)} if post_ms else None,
        "in_lag_ms": {"p50": histogram_pct(in_counts, 50), "p99": histogram_pct(in_counts, 99),
                      "max": max((r["in_lag_max_ms"] for r in reports), default=None), "frames": sum(in_counts)},
        "out_lag_ms": {"p50": histogram_pct(out_counts, 50), "p99": histogram_pct(out_counts, 99),
                       "max": max((r["out_lag_max_ms"] for r in reports), default=None), "frames": sum(out_counts)},
        "reply_ms": {"p50": round(pct(replies, 50), 1) if replies else None, "p99": round(pct(replies, 99), 1) if replies else None,
                     "n": len(replies), "missing": sum(r["missing_replies"] for r in reports)},
        "caller_reports": len(reports),
        "event_to_ws_ms": {"p50": round(pct(latency, 50), 1) if latency else None,
                           "p99": round(pct(latency, 99), 1) if latency else None, "n": len(latency),
                           "all_calls_up": {"p50": round(pct(steady, 50), 1) if steady else None,
                                            "p99": round(pct(steady, 99), 1) if steady else None, "n": len(steady)}},
        "events": {"stored": stored_total, "received": received_total, "lost": lost, "duplicated": duplicated,
                   "socket_reconnects": sum(w.reconnects for w in watches.values()),
                   "socket_errors": sorted({w.error for w in watches.values() if w.error})[:3]},
        "worker": {"cpu_percent_of_one_core": round(cpu, 1) if cpu is not None else None, "rss_mb": round(rss, 1),
                   "rss_mb_per_call": round((rss - rss_before) / n, 2), "full_load_samples": len(full)},
        # the rest of this machine's two cores while every call was up: where else the CPU went
        "other_processes_cpu_percent": others_cpu,
        "db_connections_peak": max(db_connections, default=None),
        "worker_gc_pauses": gc_round,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    for name, (_, path) in profiles.items():
        figures["profile" if name == "worker" else f"profile_{name}"] = {"path": str(path.relative_to(ROOT)), **top_frames(path)}
    return figures


def database_connections() -> int:
    """Server connections to the bench's database (every process of the bench, this one included)."""
    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def top_frames(path: Path, k: int = 15) -> dict[str, Any]:
    """py-spy's raw (collapsed) stacks → the functions that held the GIL most: self and inclusive."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    if not path.exists():
        return {"error": "py-spy wrote no profile"}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")" if " (" in f else f for f in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    share = lambda c: round(100 * c / max(total, 1), 1)  # noqa: E731
    return {"samples": total, "self": [(f, share(c)) for f, c in own.most_common(k)],
            "inclusive": [(f, share(c)) for f, c in inclusive.most_common(k)]}


def print_round(f: dict[str, Any]) -> None:
    say(f"N={f['n']:4d}  in-lag p50/p99 {f['in_lag_ms']['p50']}/{f['in_lag_ms']['p99']} ms  "
        f"out-lag p50/p99 {f['out_lag_ms']['p50']}/{f['out_lag_ms']['p99']} ms  "
        f"reply p50/p99 {f['reply_ms']['p50']}/{f['reply_ms']['p99']} ms ({f['reply_ms']['n']} replies, "
        f"{f['reply_ms']['missing']} missing)  event→WS p50/p99 {f['event_to_ws_ms']['p50']}/{f['event_to_ws_ms']['p99']} ms "
        f"(all calls up: {f['event_to_ws_ms']['all_calls_up']['p50']}/{f['event_to_ws_ms']['all_calls_up']['p99']} ms)  "
        f"events stored {f['events']['stored']} received {f['events']['received']} lost {f['events']['lost']} "
        f"dup {f['events']['duplicated']}  worker CPU {f['worker']['cpu_percent_of_one_core']} %  "
        f"RSS {f['worker']['rss_mb_per_call']} MB/call  failed {f['failed']}  load {f['load_average_1m']}  "
        f"others' CPU % {f['other_processes_cpu_percent']}  DB connections peak {f['db_connections_peak']}")
    if f.get("worker_gc_pauses"):
        say("worker GC this round: " + "  ".join(
            f"{gen} {g['collections']}x {g['total_ms']} ms, CPU {g['cpu_ms']} ms ({g['over_20ms']} over 20 ms, max so far {g['max_ms_so_far']})"
            for gen, g in f["worker_gc_pauses"].items() if gen not in ("slow", "round_started_at")))
        started = f["worker_gc_pauses"]["round_started_at"]
        for at, gen, ms, cpu_ms, thread in f["worker_gc_pauses"].get("slow", []):
            print(f"    +{at - started:5.1f} s  gen{gen} {ms} ms, CPU {cpu_ms} ms  ({thread})", flush=True)
    for key, name in (("profile", "worker"), ("profile_web", "web process")):
        if key not in f:
            continue
        say(f"profile of the {name} at N={f['n']} ({f[key].get('samples')} samples with the GIL), top self:")
        for frame, share in f[key].get("self", []):
            print(f"    {share:5.1f} %  {frame}", flush=True)
        say("top inclusive:")
        for frame, share in f[key].get("inclusive", []):
            print(f"    {share:5.1f} %  {frame}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ns", default="10,100,200,400", help="concurrent calls per round (the first is the reference)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds each call lasts")
    parser.add_argument("--ramp", type=float, default=40.0, help="calls dispatched per second")
    parser.add_argument("--profile-n", type=int, default=0, help="py-spy the worker and the web process during the round with this N")
    parser.add_argument("--profile-seconds", type=int, default=15)
    parser.add_argument("--gc-pauses", action="store_true",
                        help="record the worker's cycle-collector pauses per generation (gc.callbacks)")
    parser.add_argument("--gc-young", type=int, default=0,
                        help="with --gc-pauses: the worker's young-generation threshold instead of runtime.gc_policy's")
    parser.add_argument("--worker-db-pool", type=int, default=20,
                        help="DB_POOL_MAX_SIZE of the worker (0: no pool, a connection per Celery thread)")
    parser.add_argument("--web-db-pool", type=int, default=10, help="DB_POOL_MAX_SIZE of the web process (0: no pool)")
    args = parser.parse_args()
    ns = [int(x) for x in args.ns.split(",")]

    load_start = os.getloadavg()[0]
    say(f"load average (1 min) at start: {load_start:.2f} on {os.cpu_count()} cores")
    fresh_fleet(os.environ["DATABASE_URL"], agent_id=AGENT)
    import redis
    from django.conf import settings

    from agents import services as agent_services
    from controlplane.models import ApiKey
    from workers.models import Worker, WorkerStatus
    log_dir = ROOT / "var" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[Any]] = []
    worker_proc = None
    try:
        double, double_port = start_double(log_dir)
        procs.append(double)
        provider = {"provider": "openai", "base_url": f"http://127.0.0.1:{double_port}/v1", "api_key_env": KEY_ENV}
        agent = agent_services.agent_create(
            agent_id=AGENT, instructions="Answer briefly.", actor="bench",
            llm_config={**provider, "model": "gpt-4o-mini", "timeout_s": 10, "max_retries": 0},
            stt_config={**provider, "model": "whisper-1"}, tts_config={**provider, "voice": "alloy"})
        agent_services.agent_activate(agent=agent)
        _, key = ApiKey.generate(name="capacity-bench", scopes=["jobs:write", "read", "sessions:control", "loadtest"])
        worker = worker_proc = start_worker(max(ns), log_dir, args.worker_db_pool, args.gc_pauses or bool(args.gc_young), args.gc_young)
        procs.append(worker)
        port = free_port()
        web = start_web(port, log_dir, args.web_db_pool)
        procs.append(web)
        args.pids = {"web": web.pid, "openai_double": double.pid, "bench_client": os.getpid()}
        redis_pid = redis.Redis.from_url(settings.REDIS_URL).info("server").get("process_id")
        if redis_pid and Path(f"/proc/{redis_pid}").exists():
            args.pids["redis"] = int(redis_pid)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while not Worker.objects.filter(status=WorkerStatus.ONLINE).exists():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not come online; see {log_dir / 'capacity-worker.log'}")
            time.sleep(0.2)
        say(f"worker pid {worker.pid} online (capacity {max(ns)}), web on {base}, OpenAI double on :{double_port}")

        async def run() -> list[dict[str, Any]]:
            fleet_counts: collections.Counter[str] = collections.Counter()
            fleet_stop = asyncio.Event()
            fleet = asyncio.create_task(watch_fleet(base, key, fleet_counts, fleet_stop))
            rounds = []
            for n in ns:
                say(f"round N={n}: dispatching at {args.ramp:g}/s, calls of {args.duration:g} s")
                figures = await round_of(n, args, base, key, worker.pid)
                print_round(figures)
                rounds.append(figures)
            fleet_stop.set()
            await asyncio.gather(fleet, return_exceptions=True)
            say(f"fleet socket: {dict(fleet_counts)}")
            return rounds

        rounds = asyncio.run(run())
    finally:
        for proc in reversed(procs):  # the worker gets a cold shutdown (SIGQUIT): its calls are over
            proc.send_signal(signal.SIGQUIT if proc is worker_proc else signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()

    by_n = {r["n"]: r for r in rounds}
    reference = by_n[ns[0]]["reply_ms"]["p99"]
    top = by_n[max(ns)]
    lag_p99 = max(x for x in (top["in_lag_ms"]["p99"], top["out_lag_ms"]["p99"]) if x is not None) \
        if top["in_lag_ms"]["p99"] is not None else None
    goals = {
        "frame_lag_p99_under_20ms": lag_p99 is not None and lag_p99 < 20,
        "reply_p99_within_50ms_of_reference": None not in (reference, top["reply_ms"]["p99"])
        and top["reply_ms"]["p99"] - reference <= 50,
        "event_to_ws_p99_under_100ms": top["event_to_ws_ms"]["p99"] is not None and top["event_to_ws_ms"]["p99"] < 100,
        "no_events_lost_or_duplicated": all(r["events"]["lost"] == 0 and r["events"]["duplicated"] == 0 for r in rounds),
        "no_failed_calls": all(r["failed"] == 0 and r["sessions"] == r["n"] for r in rounds),
    }
    print(json.dumps({"bench": "capacity", "duration_s": args.duration, "ramp_per_s": args.ramp,
                      "reference_n": ns[0], "db_pool": {"worker": args.worker_db_pool, "web": args.web_db_pool},
                      "reply_p99_reference_ms": reference, "rounds": rounds, "goals": goals,
                      "goal_met": all(goals.values()),
                      "load_average_1m": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2),
                                          "cores": os.cpu_count()}}))


if __name__ == "__main__":
    main()
