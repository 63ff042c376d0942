"""The fleet against its infrastructure failing: Redis and PostgreSQL restarts, dead workers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_chaos \\
        flock /tmp/bench.lock .venv/bin/python bench/chaos.py [--redis-empty-trials 10] [--redis-aof-trials 10] \\
        [--pg-trials 1] [--lone-kill-trials 4] [--kill9-trials 20] [--sessions 20]

Real parts only: `manage.py start` worker processes running the runtime-free echo entry
point, `manage.py supervise` (the maintenance loop), PostgreSQL and a Redis of its own
(`--redis-port`, default 6450, data in a temp dir) that it restarts; the PostgreSQL trials
run on a cluster of their own (`initdb` into a temp dir, `--pg-port`, default 5450) that it
stops and starts. The machine's shared services are never restarted.

1. Redis restart (empty, then appendonly), `--sessions` echo sessions on two workers:
   sessions lost, time for jobs dispatched 2 s and `--late-dispatch-s` after Redis is back
   to reach `running`, time until operator commands and fleet events work again, and
   samples (every second) of a worker reporting `online` whose consumer does not answer a
   Celery ping (a row still `online` when the ping's 1 s is up, broker reachable or not).
2. PostgreSQL fast restart and a 25 s outage mid-session: sessions still live after, event
   seq gap-free and unique, no job re-dispatched or failed.
3. The only worker SIGKILLed: time until its jobs are taken back, with no worker alive.
4. kill -9 of one of two workers hosting `--sessions` sessions: time until every job is
   running again on the survivor; live sessions per job at most one.

Timings: lease 6 s, heartbeat 1 s, offline after 6 s. Each figure is printed as it is
measured; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import ensure_database, pct  # noqa: E402

LEASE_S, HEARTBEAT_S, OFFLINE_S = 6, 1, 6
AGENT = "chaos-unlimited"
FLEET_ENV = {
    "JOB_LEASE_SECONDS": str(LEASE_S), "WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT_S),
    "WORKER_OFFLINE_AFTER_SECONDS": str(OFFLINE_S), "WORKER_REPORT_CPU_LOAD": "false",
    "WORKER_ENTRY_POINT": "workers.entrypoints:echo_session", "SUPERVISE_INTERVAL_SECONDS": "1",
    "JOB_QUEUE_LIMIT": "100000", "DISPATCH_RATE_LIMIT_PER_MINUTE": "1000000", "LOG_LEVEL": "INFO",
    "CIRCUIT_BREAKER_THRESHOLD": "1000",
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-empty-trials", type=int, default=10)
    p.add_argument("--redis-aof-trials", type=int, default=10)
    p.add_argument("--pg-trials", type=int, default=1, help="each: one fast restart and one 25 s outage")
    p.add_argument("--pg-outage-s", type=float, default=25.0)
    p.add_argument("--lone-kill-trials", type=int, default=4)
    p.add_argument("--kill9-trials", type=int, default=20)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--redis-outage-s", type=float, default=3.0)
    p.add_argument("--late-dispatch-s", type=float, default=60.0)
    p.add_argument("--redis-port", type=int, default=6450)
    p.add_argument("--pg-port", type=int, default=5450)
    p.add_argument("--keep-logs", action="store_true")
    p.add_argument("--pg-only", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


ARGS = parse_args()
WORK = Path(tempfile.mkdtemp(prefix="chaos-"))
os.environ["REDIS_URL"] = f"redis://127.0.0.1:{ARGS.redis_port}/1"
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cp_chaos")
os.environ.update(FLEET_ENV)
os.environ["LOG_LEVEL"] = "ERROR"  # this process's own broker/DB errors during the outages are expected
PHASE: dict[str, Any] = {"now": "start", "since": time.monotonic()}  # what the trials do, for the sampler's report


def phase(now: str) -> None:
    PHASE.update(now=now, since=time.monotonic())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
SHARED_DB = os.environ["DATABASE_URL"]


def say(line: str) -> None:
    print(line, flush=True)


# --- services of our own --------------------------------------------------------------------


class OwnRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.dir = WORK / f"redis-{port}"
        self.dir.mkdir()

    def start(self, *, appendonly: bool) -> None:
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                        "--appendonly", "yes" if appendonly else "no", "--dir", str(self.dir),
                        "--pidfile", str(self.dir / "redis.pid")], check=True, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True).stdout.strip() != "PONG":
            if time.monotonic() > deadline:
                raise RuntimeError("own redis did not start")
            time.sleep(0.05)

    def stop(self, *, keep_data: bool) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "save" if keep_data else "nosave"],
                       capture_output=True)
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).returncode == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("own redis did not stop")
            time.sleep(0.05)
        if not keep_data:
            for f in self.dir.iterdir():
                shutil.rmtree(f) if f.is_dir() else f.unlink()


class OwnPostgres:
    """A throw-away cluster: initdb into the work dir, pg_ctl it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.data = WORK / "pgdata"
        self.bin = self._bindir()
        env = {**os.environ}
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.as_user = as_user
        if as_user:
            shutil.chown(WORK, "postgres")
            os.chmod(WORK, 0o777)
        subprocess.run([*as_user, f"{self.bin}/initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        self.url = f"postgres://postgres@127.0.0.1:{port}/cp_chaos_pg"

    @staticmethod
    def _bindir() -> str:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and Path(out.stdout.strip(), "initdb").exists():
            return out.stdout.strip()
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise RuntimeError("initdb not found")
        return str(found[-1].parent)

    def ctl(self, *args: str) -> None:
        subprocess.run([*self.as_user, f"{self.bin}/pg_ctl", "-D", str(self.data), "-w", "-l", str(WORK / "pg.log"),
                        "-o", f"-p {self.port} -k {WORK} -c listen_addresses=127.0.0.1", *args],
                       check=True, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        self.ctl("start")

    def stop(self) -> None:
        self.ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self.ctl("restart", "-m", "fast")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass


# --- the fleet -------------------------------------------------------------------------------


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log_path = WORK / f"{name.replace('@', '_')}.log"
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class Fleet:
    def __init__(self, database_url: str, *, capacity: int) -> None:
        # the fleet logs at FLEET_ENV's level (this process's own is ERROR), so a trial's logs say what the workers did
        self.env = {**os.environ, "LOG_LEVEL": FLEET_ENV["LOG_LEVEL"], "DATABASE_URL": database_url,
                    "WORKER_MAX_CONCURRENT_JOBS": str(capacity), "PYTHONUNBUFFERED": "1"}
        self.procs: list[Proc] = []
        self.serial = 0

    def worker(self, label: str) -> Proc:
        self.serial += 1
        name = f"{label}{self.serial}@chaos"
        proc = Proc(name, [sys.executable, "manage.py", "start", "--name", name], self.env)
        self.procs.append(proc)
        return proc

    def supervise(self) -> Proc:
        proc = Proc("supervise", [sys.executable, "manage.py", "supervise"], self.env)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for p in self.procs:
            p.stop()
        self.procs.clear()


def wait(fn: Any, timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
        except Exception:  # noqa: BLE001 - the service under test may be down
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


# --- Django-side helpers (after setup) -----------------------------------------------------------


def django_setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()


def reset_database() -> None:
    from django.core.management import call_command

    from agents import services as agents
    from agents.models import Agent
    from sessions.models import AgentSession
    from workers.models import Job, Worker

    call_command("migrate", verbosity=0)
    AgentSession.objects.all().delete()
    Job.objects.all().delete()
    Worker.objects.all().delete()
    if not Agent.objects.filter(agent_id=AGENT).exists():
        # no idle timeout or maximum duration: the bench's sessions are meant to outlive the trials
        agent = agents.agent_create(agent_id=AGENT, instructions="Echo.", actor="bench",
                                    llm_config={"provider": "openai", "model": "gpt-4o-mini"},
                                    turn_config={"idle_timeout_s": 0, "max_duration_s": 0})
        agents.agent_activate(agent=agent)


def online(names: list[str]) -> bool:
    from workers.models import Worker, WorkerStatus

    return Worker.objects.filter(pk__in=names, status=WorkerStatus.ONLINE).count() == len(names)


def dispatch(n: int, room: str) -> list[str]:
    from workers.dispatch import job_dispatch

    return [job_dispatch(agent_id=AGENT, room=f"{room}-{i}", transport="local").job_id for i in range(n)]


def running(job_ids: list[str]) -> bool:
    from sessions.models import AgentSession, SessionStatus
    from workers.models import Job, JobStatus

    jobs = Job.objects.filter(pk__in=job_ids, status=JobStatus.RUNNING).count()
    live = AgentSession.objects.filter(job_id__in=job_ids, status=SessionStatus.ACTIVE).count()
    return jobs == len(job_ids) and live == len(job_ids)


def cancel(job_ids: list[str]) -> None:
    from workers.dispatch import job_cancel_request

    for job_id in job_ids:
        try:
            job_cancel_request(job_id=job_id, actor="bench")
        except Exception:  # noqa: BLE001 - already finished
            pass


def time_to_running(job_ids: list[str], timeout: float = 40.0) -> float | None:
    t0 = time.monotonic()
    return time.monotonic() - t0 if wait(lambda: running(job_ids), timeout) else None


def session_of(job_id: str) -> str:
    from sessions.models import AgentSession

    return AgentSession.objects.filter(job_id=job_id).values_list("session_id", flat=True).first() or ""


def command_works(session_id: str) -> bool:
    """An operator message accepted (the worker confirmed it) and its echo stored."""
    from sessions.control import send_session_command
    from sessions.models import SessionEvent

    text = f"probe-{time.monotonic_ns()}"
    send_session_command(session_id, "message", actor="bench", text=text)
    return bool(wait(lambda: SessionEvent.objects.filter(session_id=session_id, type="response_generated",
                                                         data__text=f"echo: {text}").exists(), 5, 0.05))


def close_db() -> None:
    from django.db import connection

    connection.close()


class FleetEventWatch:
    """Listens to the fleet group on its own loop and rejoins after failures."""

    def __init__(self) -> None:
        self.received: list[float] = []
        self._stop = False
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()

    async def _run(self) -> None:
        from channels.layers import get_channel_layer

        from controlplane.fleet_events import FLEET_GROUP

        layer = get_channel_layer()
        channel = await layer.new_channel()
        joined = False
        while not self._stop:
            try:
                if not joined:
                    await layer.group_add(FLEET_GROUP, channel)
                    joined = True
                await asyncio.wait_for(layer.receive(channel), timeout=2)
                self.received.append(time.monotonic())
            except asyncio.TimeoutError:
                joined = False  # refresh membership: an emptied Redis forgot it
            except Exception:  # noqa: BLE001
                joined = False
                await asyncio.sleep(0.2)

    def first_after(self, t: float) -> float | None:
        later = [r for r in self.received if r >= t]
        return later[0] - t if later else None


PING_TIMEOUT_S = 1.0


class OnlineWithoutConsumer:
    """Every second: each worker the database calls `online` must answer a Celery ping."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.samples = 0
        self.broker_down_samples = 0  # samples whose ping could not reach the broker
        self.ping_s: list[float] = []  # round trips of the pings every claimed worker answered
        self._pings = ThreadPoolExecutor(max_workers=16, thread_name_prefix="chaos-ping")
        self.violations: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from django.db import connection

        from workers.models import Worker, WorkerStatus

        while not self._stop.wait(1.0):
            try:
                claimed = list(Worker.objects.filter(pk__in=self.names, status=WorkerStatus.ONLINE).values_list("pk", flat=True))
            except Exception:  # noqa: BLE001
                connection.close()
                continue
            if not claimed:
                self.samples += 1
                continue
            pinged_at = time.monotonic()
            answered = self._ping(claimed)
            if answered is None:  # broker down: a worker calling itself online then is wrong
                answered = set()
                self.broker_down_samples += 1
            elif answered >= set(claimed):
                self.ping_s.append(time.monotonic() - pinged_at)  # how close healthy answers come to the timeout
            self.samples += 1
            # a worker may have turned unready while we pinged: only a row still online counts.
            # Each silent worker gets the ping's whole timeout for that, also when the ping
            # failed at once because the broker had just gone (the worker learns it from its
            # own failed read a moment later, as it would miss a ping's timeout)
            silent = set(claimed) - answered
            if silent:
                time.sleep(max(0.0, pinged_at + PING_TIMEOUT_S - time.monotonic()))
                still = set(Worker.objects.filter(pk__in=silent, status=WorkerStatus.ONLINE).values_list("pk", flat=True))
                for name in still:
                    into, clock = time.monotonic() - PHASE["since"], time.strftime("%H:%M:%S")
                    self.violations.append((time.monotonic(), f"{name} during {PHASE['now']} (+{into:.1f} s, {clock}): "
                                                               f"{self._follow_up(name)}"))
        connection.close()

    def _ping(self, names: list[str]) -> set[str] | None:
        """The workers that answer a Celery ping; None when the broker cannot be reached.

        kombu publishes the ping with retries for as long as the broker is away: a ping not
        back by its timeout (and a little) counts as the broker being down, so the sampler
        is not blind through an outage (the abandoned call ends once the broker is back)."""
        pinging = self._pings.submit(self._ping_blocking, names)
        try:
            return pinging.result(timeout=PING_TIMEOUT_S + 0.5)
        except Exception:  # noqa: BLE001 - timed out, or the broker refused the connection
            return None

    @staticmethod
    def _ping_blocking(names: list[str]) -> set[str]:
        from controlplane.celery import app

        # a fresh connection each time: it declares its reply queue again (an emptied
        # Redis forgets that binding, and a reused connection thinks it declared it)
        with app.connection_for_write() as conn:
            replies = app.control.ping(destination=names, timeout=PING_TIMEOUT_S, limit=len(names), connection=conn) or []
        return {name for reply in replies for name in reply}

    def _follow_up(self, name: str) -> str:
        """What became of a violation: a report that lagged (the row turns unready, or the worker
        answers) differs from a dead consumer kept online (neither, for as long as we look)."""
        from workers.models import Worker, WorkerStatus

        t0 = time.monotonic()
        while time.monotonic() - t0 < 10.0:
            if not Worker.objects.filter(pk=name, status=WorkerStatus.ONLINE).exists():
                return f"reported unready {time.monotonic() - t0:.2f} s later"
            if name in (self._ping([name]) or set()):
                return f"answered a ping {time.monotonic() - t0:.2f} s later"
            time.sleep(0.1)
        return "still online and silent 10 s later"

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self._pings.shutdown(wait=False, cancel_futures=True)


# --- the trials ---------------------------------------------------------------------------------


def redis_trials(redis: OwnRedis, results: dict[str, Any]) -> None:
    from sessions.models import AgentSession, SessionStatus
    from workers.models import Job, JobStatus

    fleet = Fleet(SHARED_DB, capacity=ARGS.sessions + 10)
    try:
        fleet.supervise()
        workers = [fleet.worker("r"), fleet.worker("r")]
        names = [w.name for w in workers]
        if not wait(lambda: online(names), 240):
            raise RuntimeError("workers did not come online:\n" + workers[0].log()[-3000:])
        events = FleetEventWatch()
        sampler = OnlineWithoutConsumer(names)
        base = dispatch(ARGS.sessions, "base")
        if time_to_running(base, 60) is None:
            raise RuntimeError("the base sessions did not start")
        probe_session = session_of(base[0])
        for mode, trials in (("empty", ARGS.redis_empty_trials), ("appendonly", ARGS.redis_aof_trials)):
            early, late, commands, fleet_events, lost = [], [], [], [], 0
            if trials:
                phase(f"switching redis to {mode}")
                redis.stop(keep_data=False)
                redis.start(appendonly=mode == "appendonly")
                wait(lambda: online(names), 30)
            for trial in range(trials):
                phase(f"{mode} trial {trial + 1}: redis down")
                redis.stop(keep_data=mode == "appendonly")
                time.sleep(ARGS.redis_outage_s)
                redis.start(appendonly=mode == "appendonly")
                back, back_clock = time.monotonic(), time.strftime("%H:%M:%S")
                phase(f"{mode} trial {trial + 1}: redis back")
                cmd_t = wait(lambda: command_works(probe_session) and time.monotonic() - back, 30, 0.2)
                time.sleep(max(0.0, back + 2.0 - time.monotonic()))
                jobs = dispatch(3, f"{mode}{trial}-early")
                t_early = time_to_running(jobs)
                ev_t = events.first_after(back)
                time.sleep(max(0.0, back + ARGS.late_dispatch_s - time.monotonic()))
                phase(f"{mode} trial {trial + 1}: late dispatch")
                late_jobs = dispatch(3, f"{mode}{trial}-late")
                t_late = time_to_running(late_jobs)
                cancel(jobs + late_jobs)
                still = Job.objects.filter(pk__in=base, status=JobStatus.RUNNING, attempts=1).count()
                live = AgentSession.objects.filter(job_id__in=base, status=SessionStatus.ACTIVE).count()
                lost_now = len(base) - min(still, live)
                lost += lost_now
                early.append(t_early if t_early is not None else float("inf"))
                late.append(t_late if t_late is not None else float("inf"))
                commands.append(cmd_t if cmd_t else float("inf"))
                fleet_events.append(ev_t if ev_t is not None else float("inf"))
                say(f"redis {mode} restart {trial + 1}/{trials}: early job running after {fmt(t_early)}, "
                    f"late job {fmt(t_late)}, operator command ok after {fmt(cmd_t or None)}, "
                    f"fleet event after {fmt(ev_t)}, sessions lost {lost_now} (redis back at {back_clock})")
                wait(lambda: not Job.objects.filter(pk__in=jobs + late_jobs, status__in=("pending", "assigned", "running")).exists(), 15)
            if trials:
                results[f"redis_{mode}"] = {
                    "trials": trials, "sessions": ARGS.sessions, "sessions_lost": lost,
                    "early_dispatch_to_running_p99_s": rnd(pct(early, 99)), "early_dispatch_to_running_max_s": rnd(max(early)),
                    "late_dispatch_to_running_p99_s": rnd(pct(late, 99)), "late_dispatch_to_running_max_s": rnd(max(late)),
                    "operator_command_ok_p99_s": rnd(pct(commands, 99)), "fleet_event_p99_s": rnd(pct(fleet_events, 99)),
                }
                say(f"redis {mode}: {json.dumps(results[f'redis_{mode}'])}")
        sampler.stop()
        results["online_without_consumer"] = {"samples": sampler.samples, "broker_down_samples": sampler.broker_down_samples,
                                              "violations": len(sampler.violations),
                                              "ping_p99_s": rnd(pct(sampler.ping_s, 99)) if sampler.ping_s else None,
                                              "ping_max_s": rnd(max(sampler.ping_s, default=0.0))}
        say(f"online-without-consumer samples: {sampler.samples} ({sampler.broker_down_samples} with the broker down), "
            f"violations: {len(sampler.violations)}; answered pings p99 {fmt(pct(sampler.ping_s, 99) if sampler.ping_s else None)}, "
            f"max {fmt(max(sampler.ping_s, default=None))}"
            + "".join(f"\n  {what}" for _, what in sampler.violations[:20]))
        crashes = sum(w.log().count("Unrecoverable error") for w in workers)
        results["consumer_unrecoverable_errors"] = crashes
        say(f"'Unrecoverable error' lines in worker logs: {crashes}")
        cancel(base)
    finally:
        fleet.stop()


def lone_kill_trials(results: dict[str, Any]) -> None:
    from workers.models import Job, JobStatus, Worker, WorkerStatus

    fleet = Fleet(SHARED_DB, capacity=10)
    times: list[float] = []
    try:
        fleet.supervise()
        for trial in range(ARGS.lone_kill_trials):
            worker = fleet.worker("lone")
            if not wait(lambda: online([worker.name]), 240):
                raise RuntimeError("lone worker did not come online")
            jobs = dispatch(3, f"lone{trial}")
            if time_to_running(jobs) is None:
                raise RuntimeError("lone sessions did not start")
            worker.kill9()
            t0 = time.monotonic()
            done = wait(lambda: not Job.objects.filter(pk__in=jobs, status=JobStatus.RUNNING).exists()
                        and Worker.objects.get(pk=worker.name).status == WorkerStatus.OFFLINE, 60)
            took = time.monotonic() - t0 if done else float("inf")
            times.append(took)
            states = sorted(Job.objects.filter(pk__in=jobs).values_list("status", flat=True))
            say(f"lone worker SIGKILLed {trial + 1}/{ARGS.lone_kill_trials}: jobs taken back after {fmt(took)} "
                f"(bound {LEASE_S + OFFLINE_S + 5} s), now {states}")
            cancel(jobs)
        if times:
            results["lone_worker_kill"] = {"trials": len(times), "taken_back_max_s": rnd(max(times)),
                                           "taken_back_p50_s": rnd(pct(times, 50)), "bound_s": LEASE_S + OFFLINE_S + 5}
    finally:
        fleet.stop()


def kill9_trials(results: dict[str, Any]) -> None:
    from sessions.models import LIVE_SESSION_STATUSES, AgentSession
    from django.db.models import Count
    from workers.models import Job

    fleet = Fleet(SHARED_DB, capacity=ARGS.sessions + 5)
    times: list[float] = []
    doubles = 0
    try:
        fleet.supervise()
        survivor = fleet.worker("k")
        for trial in range(ARGS.kill9_trials):
            victim = fleet.worker("k")
            if not wait(lambda: online([survivor.name, victim.name]), 240):
                raise RuntimeError("kill9 workers did not come online")
            jobs = dispatch(ARGS.sessions, f"k9-{trial}")
            if time_to_running(jobs, 60) is None:
                raise RuntimeError("kill9 sessions did not start")
            on_victim = list(Job.objects.filter(pk__in=jobs, assigned_worker_id=victim.name).values_list("pk", flat=True))
            victim.kill9()
            t0 = time.monotonic()
            back = wait(lambda: running(jobs) and not Job.objects.filter(pk__in=jobs, assigned_worker_id=victim.name).exists(), 60)
            took = time.monotonic() - t0 if back else float("inf")
            times.append(took)
            live_twice = (AgentSession.objects.filter(user_data__job_id__in=jobs, status__in=LIVE_SESSION_STATUSES)
                          .values("user_data__job_id").annotate(n=Count("pk")).filter(n__gt=1).count())
            doubles += live_twice
            say(f"kill -9 {trial + 1}/{ARGS.kill9_trials}: {len(on_victim)} of {len(jobs)} jobs on the victim, all running "
                f"on the survivor after {fmt(took)} (bound {LEASE_S + OFFLINE_S + 5} s), jobs with two live sessions: {live_twice}")
            cancel(jobs)
            wait(lambda: not AgentSession.objects.filter(user_data__job_id__in=jobs, status__in=LIVE_SESSION_STATUSES).exists(), 20)
        if times:
            results["kill9_two_workers"] = {"trials": len(times), "sessions": ARGS.sessions, "back_running_max_s": rnd(max(times)),
                                            "back_running_p99_s": rnd(pct(times, 99)), "double_sessions": doubles,
                                            "bound_s": LEASE_S + OFFLINE_S + 5}
    finally:
        fleet.stop()


def pg_trials(pg: OwnPostgres, results: dict[str, Any]) -> None:
    """Runs with this process's Django pointed at the own cluster (set up before django.setup)."""
    from django.db import connection
    from django.db.models import Count, Max

    from sessions.models import AgentSession, SessionEvent, SessionStatus
    from workers.models import Job, JobStatus

    fleet = Fleet(pg.url, capacity=20)
    out: dict[str, Any] = {}
    try:
        fleet.supervise()
        workers = [fleet.worker("pg"), fleet.worker("pg")]
        names = [w.name for w in workers]
        if not wait(lambda: online(names), 240):
            raise RuntimeError("pg workers did not come online")
        for trial in range(ARGS.pg_trials):
            for mode in ("fast_restart", "outage"):
                jobs = dispatch(10, f"pg-{mode}-{trial}")
                if time_to_running(jobs, 60) is None:
                    raise RuntimeError("pg sessions did not start")
                sessions = [session_of(j) for j in jobs]
                for s in sessions:
                    command_works(s)
                close_db()
                if mode == "fast_restart":
                    pg.restart()
                else:
                    pg.stop()
                    time.sleep(ARGS.pg_outage_s)
                    pg.start()
                back = time.monotonic()
                talking = wait(lambda: all(command_works(s) for s in sessions) and time.monotonic() - back, 60, 0.5)
                time.sleep(LEASE_S + OFFLINE_S + 2)  # long enough for a wrong reap to show
                live = AgentSession.objects.filter(pk__in=sessions, status=SessionStatus.ACTIVE).count()
                redispatched = Job.objects.filter(pk__in=jobs).exclude(status=JobStatus.RUNNING, attempts=1).count()
                seqs = SessionEvent.objects.filter(session_id__in=sessions).values("session_id").annotate(
                    n=Count("pk"), top=Max("seq"))
                gaps = sum(1 for row in seqs if row["n"] != row["top"])
                dup = SessionEvent.objects.filter(session_id__in=sessions).values("session_id", "seq").annotate(
                    n=Count("pk")).filter(n__gt=1).count()
                cancel(jobs)
                ended = wait(lambda: not AgentSession.objects.filter(pk__in=sessions, status__in=("active", "connected")).exists(), 20)
                wrong = Job.objects.filter(pk__in=jobs).exclude(status=JobStatus.CANCELLED).count()
                say(f"postgres {mode} {trial + 1}/{ARGS.pg_trials}: sessions talking again after {fmt(talking or None)}, "
                    f"still live {live}/{len(sessions)}, jobs re-dispatched or failed {redispatched}, seq gaps {gaps}, "
                    f"duplicate seq {dup}, jobs in a wrong final state {wrong}, ended cleanly {bool(ended)}")
                out.setdefault(mode, []).append({"talking_again_s": rnd(talking) if talking else None, "live": live,
                                                 "sessions": len(sessions), "redispatched_or_failed": redispatched,
                                                 "seq_gaps": gaps, "duplicate_seq": dup, "wrong_final_state": wrong})
        results["postgres"] = out
    finally:
        fleet.stop()
        connection.close()


def fmt(seconds: float | None) -> str:
    return "never" if seconds is None or seconds == float("inf") else f"{seconds:.1f} s"


def rnd(value: float) -> float | None:
    return None if value == float("inf") else round(value, 2)


def run_postgres_trials_in_child(results: dict[str, Any]) -> None:
    """This process's Django talks to one database: the PostgreSQL trials run in a child
    pointed at the own cluster (with a Redis of its own on the next port)."""
    argv = [sys.executable, __file__, "--pg-only", "--pg-trials", str(ARGS.pg_trials), "--pg-outage-s", str(ARGS.pg_outage_s),
            "--redis-port", str(ARGS.redis_port + 1), "--pg-port", str(ARGS.pg_port)]
    child = subprocess.Popen(argv, env={**os.environ, "DATABASE_URL": SHARED_DB}, stdout=subprocess.PIPE, text=True)
    last = ""
    assert child.stdout is not None
    for line in child.stdout:
        line = line.rstrip("\n")
        if line.startswith("{"):
            last = line
        else:
            say(line)
    child.wait()
    try:
        results["postgres"] = json.loads(last)["postgres"]
    except (ValueError, KeyError):
        say(f"postgres trials failed (exit {child.returncode})")
        results["postgres"] = None


def main() -> None:
    results: dict[str, Any] = {"lease_s": LEASE_S, "heartbeat_s": HEARTBEAT_S, "offline_after_s": OFFLINE_S}
    redis = OwnRedis(ARGS.redis_port)
    redis.start(appendonly=False)
    pg: OwnPostgres | None = None
    try:
        if ARGS.pg_only:
            pg = OwnPostgres(ARGS.pg_port)
            pg.start()
            ensure_database(pg.url)
            django_setup(pg.url)
            reset_database()
            pg_trials(pg, results)
        else:
            ensure_database(SHARED_DB)
            django_setup(SHARED_DB)
            reset_database()
            if ARGS.redis_empty_trials or ARGS.redis_aof_trials:
                redis_trials(redis, results)
            if ARGS.lone_kill_trials:
                lone_kill_trials(results)
            if ARGS.kill9_trials:
                kill9_trials(results)
            if ARGS.pg_trials:
                run_postgres_trials_in_child(results)
    finally:
        if pg is not None:
            pg.remove()
        redis.stop(keep_data=False)
        if not ARGS.keep_logs:
            shutil.rmtree(WORK, ignore_errors=True)
        else:
            say(f"logs in {WORK}")
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
