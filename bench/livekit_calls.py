"""N concurrent calls in one worker process over WebRTC, against the local transport.

    flock /tmp/bench.lock .venv/bin/python bench/livekit_calls.py [--calls 5,10,20] [--profile DIR]

(Named livekit_calls, not livekit: a bench/livekit.py shadowed the `livekit` SDK for every
script run from bench/, since a script's own directory comes first on sys.path.)

Needs root (it makes a network namespace, as the tests do: libwebrtc gathers no ICE
candidates on loopback). For each N, the LiveKit server double runs in its own namespace and
process with N simulated callers; one worker process hosts N voice sessions (the runtime
with the LiveKit transport, fake LLM/STT/TTS so the figures are the transport's and the
framework's) and every caller asks one spoken question (espeak-ng). Then the same N calls on
the local transport, in a fresh worker process, as the baseline.

Prints per N and transport: caller-perceived reply latency (end of the caller's speech →
first agent audio frame at the caller) p50/p99, agent input-frame lag p99 (how late each
20 ms frame reached the session against a steady 20 ms pace), the worker's CPU % over the
calls and its RSS per call (the first call, which starts the SDK's native runtime, apart
from each further one) and the native threads added; the reply latency split into its legs
(caller's end of speech → agent VAD end → agent's first loud frame → caller hears it); the
double's own loop lag (it is the measuring instrument: when it lags, so do the figures);
then WebRTC minus local and whether the aim is met. Ends with one JSON object.
Aim: WebRTC adds ≤ 30 ms to the reply latency and ≤ 2 MB per call.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import pct  # noqa: E402

KEY, SECRET = "APIbench", "livekit-bench-secret-long-enough-for-hs256"
REPLY = "It is sunny in Paris today."
LOUD = 1000.0  # RMS above which a frame is the agent's voice (FakeTTS: a 220 Hz tone)


# --- the worker process: N sessions on one loop ------------------------------------------------
def _threads() -> int:
    return int(next(line for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("Threads:")).split()[1])


def _thread_names() -> dict[str, int]:
    """This process's threads by name (digits folded): which pool grows with the calls."""
    import collections
    import re
    names = (re.sub(r"[0-9]+", "#", (task / "comm").read_text().strip()) for task in Path("/proc/self/task").iterdir())
    return dict(collections.Counter(names).most_common())


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def _host(args: argparse.Namespace) -> None:
    from runtime.provider_configs import WebRTCVADConfig
    from runtime import AgentSession, SessionOptions
    from runtime.audio import read_wav
    from runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS
    from runtime.transports import LocalTransport
    from runtime.transports.livekit import LiveKitTransport, mint_agent_token

    arrivals: list[list[float]] = [[] for _ in range(args.n)]
    replies: list[list[float]] = [[] for _ in range(args.n)]
    # wall-clock marks inside the worker, to split the WebRTC reply latency into its legs
    speech_starts: list[list[float]] = [[] for _ in range(args.n)]  # the VAD heard speech start
    speech_ends: list[list[float]] = [[] for _ in range(args.n)]  # the VAD heard the end of speech
    writes: list[list[float]] = [[] for _ in range(args.n)]  # the playout wrote a loud frame

    class TimedSession(AgentSession):  # the input side's clock: when each frame reached the session
        index = 0

        def push_audio(self, data: Any, sample_rate: int, channels: int = 1) -> None:
            arrivals[self.index].append(time.perf_counter())
            super().push_audio(data, sample_rate, channels)

        def set_user_state(self, state: Any) -> None:
            if state == "listening" and self.user_state == "speaking":
                speech_ends[self.index].append(time.time())
            elif state == "speaking" and self.user_state != "speaking":
                speech_starts[self.index].append(time.time())
            super().set_user_state(state)

    class TimedLiveKit(LiveKitTransport):
        index = 0

        def write_audio(self, frame: np.ndarray, sample_rate: int) -> None:
            if float(np.sqrt(np.mean(frame.astype(np.float32) ** 2))) > LOUD:
                writes[self.index].append(time.time())
            super().write_audio(frame, sample_rate)

    class TimedLocal(LocalTransport):  # the local "caller" hears what the playout writes
        index = 0

        def write_audio(self, frame: np.ndarray, sample_rate: int) -> None:
            if float(np.sqrt(np.mean(frame.astype(np.float32) ** 2))) > LOUD:
                replies[self.index].append(time.perf_counter())
                writes[self.index].append(time.time())
            super().write_audio(frame, sample_rate)

    base_rss, base_threads = _rss_mb(), _threads()
    rss_after: list[float] = []  # RSS after each call is up: the first one pays the SDK's one-off start
    sessions = []
    for i in range(args.n):
        if args.transport == "livekit":
            token = mint_agent_token(api_key=KEY, api_secret=SECRET, room=f"bench-{i}", job_id=f"b{i}")
            transport: Any = TimedLiveKit(url=args.url, token=token, room=f"bench-{i}", participant_identity="caller")
            transport.index = i
        else:
            transport = TimedLocal()
            transport.index = i
        session = TimedSession(options=SessionOptions(vad=WebRTCVADConfig(min_silence_ms=300)), llm=FakeLLM(REPLY),
                               stt=FakeSTT("what is the weather"), tts=FakeTTS(), transport=transport)
        session.index = i
        await session.start()  # one after another, as calls arrive
        sessions.append(session)
        rss_after.append(_rss_mb())
    print("READY", flush=True)
    ready = time.perf_counter()
    monitor = asyncio.get_running_loop().create_task(_watch(sessions))
    spoken: dict[int, float] = {}
    started: dict[int, float] = {}  # wall clock: when its question's first frame reached the session
    if args.transport == "local":
        samples, rate, channels = read_wav(args.wav)
        # like a real microphone (and the double's callers), a local caller sends 20 ms frames
        # all the time, silence included: without the silence after the question the VAD never
        # hears its end (this was the baseline's 0 of 5 answered)
        silence = np.zeros(rate * channels, dtype=np.int16)  # 1 s

        async def caller(i: int) -> None:  # one continuous stream: lead silence, the question, 5 s of silence
            lead = silence[:int(rate * (1.0 + 0.2 * i)) * channels]
            await sessions[i].transport.play(np.concatenate([lead, samples, silence, silence, silence, silence, silence]),
                                             rate, channels)
            per_frame = rate * channels // 50
            to_wall = time.time() - time.perf_counter()
            started[i] = arrivals[i][lead.size // per_frame] + to_wall
            spoken[i] = arrivals[i][(lead.size + samples.size) // per_frame - 1]

        await asyncio.gather(*(caller(i) for i in range(args.n)))
    else:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # the parent says when
    monitor.cancel()
    rss = _rss_mb()
    lags = []
    for times in arrivals:  # during the conversation, not while the other calls were joining
        times = [t for t in times if t > ready + 0.5]
        if len(times) > 10:
            t = np.asarray(times)
            ideal = np.arange(len(t)) * 0.020
            late = t - ideal
            lags.extend(((late - late.min()) * 1000).tolist())
    out = {"rss_per_call_mb": (rss - base_rss) / args.n, "input_lag_ms": lags,
           "rss_first_call_mb": rss_after[0] - base_rss,
           "rss_marginal_per_call_mb": (rss - rss_after[0]) / max(1, args.n - 1),
           "threads_added": _threads() - base_threads, "thread_names": _thread_names(),
           "speech_starts": speech_starts, "speech_ends": speech_ends, "writes": writes}
    if args.transport == "local":
        to_wall = time.time() - time.perf_counter()
        out["heard"] = {i: (started[i], end + to_wall, next(t for t in replies[i] if t > end) + to_wall)
                        for i, end in spoken.items() if any(t > end for t in replies[i])}
        out["reply_latency_ms"] = [(next(t for t in replies[i] if t > end) - end) * 1000
                                   for i, end in spoken.items() if any(t > end for t in replies[i])]
    print("RESULT " + json.dumps(out), flush=True)
    for session in sessions:
        await session.stop("bench_over")


async def _watch(sessions: list[Any]) -> None:
    """Once a second on the worker's log: the loop's worst lag and the frames waiting to go out."""
    while True:
        worst, t_end = 0.0, time.perf_counter() + 1.0
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            worst = max(worst, time.perf_counter() - t0 - 0.01)
        queued = sum(getattr(s.transport, "_out_q", asyncio.Queue()).qsize() for s in sessions)
        print(f"WATCH loop lag max {worst * 1000:.0f} ms, output frames queued {queued}", file=sys.stderr, flush=True)


# --- the bench -----------------------------------------------------------------------------------
def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker(transport: str, n: int, *, url: str = "", wav: str) -> subprocess.Popen[str]:
    log = Path(tempfile.gettempdir()) / f"bench-livekit-worker-{transport}-{n}.log"
    proc = subprocess.Popen([sys.executable, __file__, "--host-sessions", transport, "--n", str(n), "--url", url,
                             "--wav", wav], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=log.open("w"), text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc.log_path = log  # type: ignore[attr-defined]
    return proc


def _read_until(proc: subprocess.Popen[str], prefix: str, timeout: float = 180.0) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            tail = Path(proc.log_path).read_text(errors="replace")[-2000:]  # type: ignore[attr-defined]
            raise RuntimeError(f"the worker process exited before {prefix}:\n{tail}")
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    raise RuntimeError(f"no {prefix} within {timeout}s")


def run_local(n: int, wav: str) -> dict[str, Any]:
    proc = _worker("local", n, wav=wav)
    _read_until(proc, "READY")
    cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
    result = json.loads(_read_until(proc, "RESULT "))
    cpu = (_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
    proc.wait(30)
    figures = _figures(result["reply_latency_ms"], result, cpu, n)
    figures["legs"] = _legs({int(i): tuple(v) for i, v in result["heard"].items()}, result)
    return figures


def _profile(pids: dict[str, int], seconds: int, out_dir: Path, tag: str) -> list[subprocess.Popen[bytes]]:
    """py-spy on each process for `seconds` (collapsed stacks, then summarised by _top_frames)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return [subprocess.Popen([str(spy), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "50",
                              "--format", "raw", "--nonblocking", "--output", str(out_dir / f"{tag}-{name}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name, pid in pids.items()]


def run_livekit(n: int, wav: str, *, profile_dir: Path | None = None) -> dict[str, Any]:
    from tests.doubles.livekit_netns import LiveKitDoubleProcess, NetworkNamespace

    with NetworkNamespace() as netns:
        double = LiveKitDoubleProcess(netns, api_key=KEY, api_secret=SECRET).start()
        try:
            for i in range(n):
                double.client.add_caller(f"bench-{i}", "caller")
            proc = _worker("livekit", n, url=double.url, wav=wav)
            _read_until(proc, "READY")
            time.sleep(1.0)
            spies = _profile({"worker": proc.pid, "double": double.proc.pid}, 15, profile_dir, f"n{n}") \
                if profile_dir is not None and double.proc is not None else []
            cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
            double_cpu0 = _cpu_seconds(double.proc.pid) if double.proc is not None else 0.0
            for i in range(n):
                double.client.speak(f"bench-{i}", "caller", wav)
                time.sleep(0.2)
            heard = _caller_latencies(double, n)
            time.sleep(max(0.0, 0.2 * n + 8.0 - (time.monotonic() - t0)))  # the local run's window
            gaps = _reply_gaps(double, heard)
            double_lag = double.client.state()["loop_lag_ms"]
            double_cpu = (_cpu_seconds(double.proc.pid) - double_cpu0) / (time.monotonic() - t0) * 100 \
                if double.proc is not None else 0.0
            assert proc.stdin is not None
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            result = json.loads(_read_until(proc, "RESULT "))
            cpu = (_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
            proc.wait(30)
            for spy in spies:
                spy.wait(30)
        finally:
            double.stop()
    figures = _figures([(first - end) * 1000 for _, end, first in heard.values()], result, cpu, n)
    figures["double_cpu_percent"] = round(double_cpu, 1)
    figures["legs"] = _legs(heard, result)
    figures["reply_gaps"] = gaps
    figures["double_loop_lag_ms_per_s"] = double_lag[-int(time.monotonic() - t0):]
    return figures


def _caller_latencies(double: Any, n: int, timeout: float = 60.0) -> dict[int, tuple[float, float, float]]:
    """Per caller: (start and end of its speech at the double, its first loud agent frame after that)."""
    found: dict[int, tuple[float, float, float]] = {}
    deadline = time.monotonic() + timeout
    while len(found) < n and time.monotonic() < deadline:
        time.sleep(0.5)
        for i in range(n):
            if i in found:
                continue
            received = double.client.caller(f"bench-{i}", "caller", loud_above=LOUD)
            spoken = received["spoken"]
            if not spoken or not spoken[0]["ended_at"] or not received["tracks"]:
                continue
            end = spoken[0]["ended_at"]
            track = next(iter(received["tracks"].values()))
            # the onset of the first reply that began after the question: a reply to a fragment
            # of it, still playing when the caller stopped speaking, is not its answer
            loud = track["loud_times"]
            onsets = [t for k, t in enumerate(loud) if t > end and (k == 0 or t - loud[k - 1] > 0.1)]
            if onsets:
                found[i] = (spoken[0]["started_at"], end, onsets[0])
    return found


def _reply_gaps(double: Any, heard: dict[int, tuple[float, float, float]], *, frame_s: float = 0.02,
                end_s: float = 0.5) -> dict[str, Any]:
    """Silences inside the replies the callers heard (a stalled worker loop ran the SDK's
    queue dry): the reply is the loud frames from its onset until `end_s` of quiet; a gap is a
    pause inside it longer than a frame and a half. The twenty-call test asserts what was
    heard; this says how smoothly."""
    with_gaps, longest = 0, 0.0
    for i, (_, _, onset) in heard.items():
        track = next(iter(double.client.caller(f"bench-{i}", "caller", loud_above=LOUD)["tracks"].values()))
        reply = [t for t in track["loud_times"] if t >= onset]
        inner = []
        for a, b in zip(reply, reply[1:]):
            if b - a > end_s:
                break
            if b - a > frame_s * 1.5:
                inner.append(b - a - frame_s)
        if inner:
            with_gaps += 1
            longest = max(longest, max(inner))
    return {"replies": len(heard), "replies_with_gaps": with_gaps, "longest_gap_ms": round(longest * 1000, 1)}


def _legs(heard: dict[int, tuple[float, float, float]], result: dict[str, Any]) -> dict[str, float | None]:
    """The WebRTC reply latency split: the caller's end of speech → the agent's VAD hearing it →
    the agent's playout writing its first loud frame → the caller hearing it (p50 of each, ms)."""
    to_vad, to_write, to_caller, start_to_vad = [], [], [], []
    for i, (start, end, first_heard) in heard.items():
        vad_start = next((t for t in result["speech_starts"][i] if t > start), None)
        if vad_start is not None:
            start_to_vad.append((vad_start - start) * 1000)
        vad = next((t for t in result["speech_ends"][i] if t > end), None)
        write = next((t for t in result["writes"][i] if vad is not None and t > vad), None)
        if vad is None or write is None or write > first_heard:
            continue
        to_vad.append((vad - end) * 1000)
        to_write.append((write - vad) * 1000)
        to_caller.append((first_heard - write) * 1000)
    return {name: round(pct(v, 50), 1) if v else None for name, v in
            (("speech_start_to_agent_vad_start_p50_ms", start_to_vad), ("speech_end_to_agent_vad_end_p50_ms", to_vad), ("agent_vad_end_to_first_write_p50_ms", to_write),
             ("agent_write_to_caller_heard_p50_ms", to_caller))}


def _figures(latency: list[float], result: dict[str, Any], cpu: float, n: int) -> dict[str, Any]:
    lags = result["input_lag_ms"]
    return {"calls": n, "answered": len(latency),
            "reply_latency_p50_ms": round(pct(latency, 50), 1) if latency else None,
            "reply_latency_p99_ms": round(pct(latency, 99), 1) if latency else None,
            "input_lag_p99_ms": round(pct(lags, 99), 1) if lags else None,
            "cpu_percent": round(cpu, 1), "rss_per_call_mb": round(result["rss_per_call_mb"], 2),
            "rss_first_call_mb": round(result["rss_first_call_mb"], 2),
            "rss_marginal_per_call_mb": round(result["rss_marginal_per_call_mb"], 2),
            "threads_added": result["threads_added"], "thread_names": result["thread_names"]}


def _top_frames(path: Path, limit: int = 8) -> list[tuple[str, float]]:
    """The hottest leaf frames (own time) of a py-spy raw profile, as % of samples."""
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.split(";")[-1]
        own[leaf] = own.get(leaf, 0) + int(count)
        total += int(count)
    return [(frame, round(100 * c / total, 1)) for frame, c in sorted(own.items(), key=lambda kv: -kv[1])[:limit]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", default="5,10,20")
    parser.add_argument("--transports", default="livekit,local", help="which to run (both for the deltas)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="a directory: py-spy the worker and the double for 15 s of each WebRTC run")
    parser.add_argument("--host-sessions", choices=["livekit", "local"])  # the worker process's side
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--url", default="")
    parser.add_argument("--wav", default="")
    args = parser.parse_args()
    if args.host_sessions:
        args.transport = args.host_sessions
        asyncio.run(_host(args))
        return
    transports = set(args.transports.split(","))
    print(f"load before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        wav = str(Path(tmp) / "question.wav")
        subprocess.run(["espeak-ng", "-s", "160", "-w", wav, "What is the weather in Paris today?"], check=True)
        results: dict[str, Any] = {}
        for n in [int(x) for x in args.calls.split(",")]:
            runs: dict[str, dict[str, Any]] = {}
            if "livekit" in transports:
                runs["livekit"] = run_livekit(n, wav, profile_dir=args.profile)
            if "local" in transports:
                runs["local"] = run_local(n, wav)
            for name, fig in runs.items():
                print(f"N={n:<3} {name:8} answered {fig['answered']}/{n}  reply p50 {fig['reply_latency_p50_ms']} ms "
                      f"p99 {fig['reply_latency_p99_ms']} ms  input lag p99 {fig['input_lag_p99_ms']} ms  "
                      f"worker CPU {fig['cpu_percent']}%  RSS/call {fig['rss_per_call_mb']} MB "
                      f"(first call {fig['rss_first_call_mb']} MB, each further {fig['rss_marginal_per_call_mb']} MB; "
                      f"{fig['threads_added']} threads added)"
                      + (f"  double CPU {fig['double_cpu_percent']}%" if "double_cpu_percent" in fig else ""),
                      flush=True)
                if "double_loop_lag_ms_per_s" in fig:
                    print(f"N={n:<3} {name:8} the double's loop lag, worst per second (ms): "
                          f"{fig['double_loop_lag_ms_per_s']}", flush=True)
                if "legs" in fig:
                    print(f"N={n:<3} {name:8} reply latency legs (p50): {fig['legs']}", flush=True)
                if "reply_gaps" in fig:
                    print(f"N={n:<3} {name:8} silences inside the replies heard: {fig['reply_gaps']}", flush=True)
            results[str(n)] = dict(runs)
            if len(runs) == 2:
                webrtc, local = runs["livekit"], runs["local"]
                delta = {
                    "reply_latency_p50_added_ms": _minus(webrtc["reply_latency_p50_ms"], local["reply_latency_p50_ms"]),
                    "reply_latency_p99_added_ms": _minus(webrtc["reply_latency_p99_ms"], local["reply_latency_p99_ms"]),
                    "rss_per_call_added_mb": round(webrtc["rss_per_call_mb"] - local["rss_per_call_mb"], 2),
                    "rss_marginal_per_call_added_mb": round(webrtc["rss_marginal_per_call_mb"]
                                                            - local["rss_marginal_per_call_mb"], 2),
                }
                delta["latency_aim_met"] = delta["reply_latency_p50_added_ms"] is not None \
                    and delta["reply_latency_p50_added_ms"] <= 30 and webrtc["answered"] == n
                delta["memory_aim_met"] = delta["rss_marginal_per_call_added_mb"] <= 2
                results[str(n)]["webrtc_minus_local"] = delta
                print(f"N={n:<3} WebRTC adds {delta['reply_latency_p50_added_ms']} ms (p50), "
                      f"{delta['reply_latency_p99_added_ms']} ms (p99), {delta['rss_per_call_added_mb']} MB per call "
                      f"({delta['rss_marginal_per_call_added_mb']} MB per further call); aim <= 30 ms "
                      f"{'met' if delta['latency_aim_met'] else 'NOT met'}, <= 2 MB "
                      f"{'met' if delta['memory_aim_met'] else 'NOT met'}", flush=True)
            if args.profile is not None and "livekit" in runs:
                for who in ("worker", "double"):
                    path = args.profile / f"n{n}-{who}.txt"
                    if path.exists():
                        print(f"N={n:<3} py-spy {who} top own frames: {_top_frames(path)}", flush=True)
    print(f"load after: {os.getloadavg()}", flush=True)
    print(json.dumps({"bench": "livekit_calls", "goal": {"added_latency_ms": 30, "added_mb_per_call": 2},
                      "results": results}))


def _minus(a: float | None, b: float | None) -> float | None:
    return round(a - b, 1) if a is not None and b is not None else None


if __name__ == "__main__":
    main()
