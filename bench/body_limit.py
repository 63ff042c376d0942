"""RSS of the web process under one anonymous 600 MB `POST /health` (issue 12, finding 5).

Starts two web servers on loopback, one after the other, each a fresh process:
  stock   `daphne server.asgi:application` (the ASGI body limit is in the app, but
          daphne has queued the whole body for the app before the app runs)
  bounded `python -m controlplane.web_server …` (what docker-compose runs: refused at the
          headers, nothing buffered)
and for each prints RSS before, the peak during (VmHWM) and RSS after, then one JSON object.
Goal: the bounded server grows by less than 20 MB.

    flock /tmp/bench.lock .venv/bin/python bench/body_limit.py [--mb 600]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHUNK = b"\0" * (1024 * 1024)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def start(command: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([*command[:1], *command[1:], "-b", "127.0.0.1", "-p", str(port), "server.asgi:application"],
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server did not start: {log.read_text()[-2000:]}")


def post(port: int, megabytes: int) -> tuple[str, float, int]:
    """Send the whole body as a client that ignores an early answer would; return the status line."""
    t0 = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: %d\r\n\r\n" % (megabytes * len(CHUNK)))
        try:
            for _ in range(megabytes):
                sock.sendall(CHUNK)
                sent += len(CHUNK)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while b"\r\n" not in answer and (data := sock.recv(4096)):
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    return answer.split(b"\r\n", 1)[0].decode() or "(connection closed)", time.monotonic() - t0, sent


def measure(name: str, command: list[str], env: dict[str, str], megabytes: int, logs: Path) -> dict[str, object]:
    proc, port = start(command, env, logs / f"{name}.log")
    try:
        time.sleep(1.0)
        before = memory_mb(proc.pid)
        status, seconds, sent = post(port, megabytes)
        time.sleep(3.0)  # let the server finish with the request
        after = memory_mb(proc.pid)
        alive = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10).status == 200
    finally:
        proc.terminate()
        proc.wait(15)
    row = {"server": name, "answer": status, "rss_before_mb": round(before["VmRSS"], 1),
           "rss_peak_mb": round(after["VmHWM"], 1), "rss_after_mb": round(after["VmRSS"], 1),
           "peak_growth_mb": round(after["VmHWM"] - before["VmRSS"], 1), "body_sent_mb": round(sent / 2**20, 1),
           "seconds": round(seconds, 2), "still_serving": alive}
    print(f"{name:8} {status:32} RSS before {row['rss_before_mb']:7.1f} MB  peak {row['rss_peak_mb']:7.1f} MB  "
          f"after {row['rss_after_mb']:7.1f} MB  growth {row['peak_growth_mb']:7.1f} MB  ({row['seconds']} s)")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=600, help="body size in MB")
    args = parser.parse_args()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings", "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}
    if env.get("DATABASE_URL") or env.get("REDIS_URL"):
        env.setdefault("SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
    with tempfile.TemporaryDirectory(prefix="body-limit-") as tmp:
        env.setdefault("CONTROLPLANE_VAR_DIR", tmp)
        logs = Path(tmp)
        rows = [
            measure("stock", [sys.executable, "-m", "daphne"], env, args.mb, logs),
            measure("bounded", [sys.executable, "-m", "controlplane.web_server"], env, args.mb, logs),
        ]
    stock, bounded = rows
    print(json.dumps({
        "bench": "body_limit", "body_mb": args.mb, "limit_bytes": int(env.get("REQUEST_BODY_MAX_BYTES", 10 * 2**20)),
        "servers": rows, "goal_growth_mb": 20, "bounded_meets_goal": bool(bounded["peak_growth_mb"] < 20),
        "growth_ratio_stock_to_bounded": round(stock["peak_growth_mb"] / max(bounded["peak_growth_mb"], 0.1), 1),
    }))


if __name__ == "__main__":
    main()
