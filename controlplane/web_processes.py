"""Several web processes on one port: `python -m controlplane.web_processes -b HOST -p PORT APP`.

One daphne process runs Python on one core (the GIL), so production runs one web process
per core: this binds the listening socket once and starts WEB_PROCESSES (default: the CPU
count) `controlplane.web_server` children that all accept on it (`--fd`); the kernel hands
each connection to one of them. Any other daphne option is passed to every child. A child
that dies is restarted; SIGTERM/SIGINT stop them all. They share nothing but PostgreSQL and
Redis, which is all the API needs (the rate-limit buckets live in Redis).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

log = logging.getLogger("controlplane.web_processes")
RESTART_PAUSE_S = 1.0


def _processes() -> int:
    raw = os.environ.get("WEB_PROCESSES", "")
    try:
        n = int(raw) if raw else (os.cpu_count() or 1)
    except ValueError:
        raise SystemExit(f"WEB_PROCESSES must be a whole number, not {raw!r}") from None
    if not 1 <= n <= 64:
        raise SystemExit("WEB_PROCESSES must be 1..64")
    return n


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-b", "--bind", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=8000)
    args, rest = parser.parse_known_args()
    listener = socket.socket(socket.AF_INET6 if ":" in args.bind else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.bind, args.port))
    listener.listen(1024)
    listener.set_inheritable(True)
    command = [sys.executable, "-m", "controlplane.web_server", "--fd", str(listener.fileno()), *rest]
    stopping = False

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, pass_fds=(listener.fileno(),))

    children = [spawn() for _ in range(_processes())]
    log.info("%d web processes on %s:%d", len(children), args.bind, args.port)

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        for i, child in enumerate(children):
            if child.poll() is not None and not stopping:
                log.warning("web process %d exited with %s; restarting it", child.pid, child.returncode)
                time.sleep(RESTART_PAUSE_S)
                children[i] = spawn()
        time.sleep(0.5)
    for child in children:
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    main()
