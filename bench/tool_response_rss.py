"""Worker memory under a huge HTTP tool answer (issue 12, finding 6).

    .venv/bin/python bench/tool_response_rss.py [--mb 150]

A loopback HTTP server (this process) answers with `--mb` megabytes, once with a
Content-Length and once without (the body runs until the connection closes). For each, a
fresh Python process (the "worker") imports the tools package, records its RSS, calls one
HTTP tool at the server and records its RSS and peak RSS (VmHWM) afterwards. The server's
memory is not in the figures. The last line is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BLOCK = b"x" * 65536

WORKER = r"""
import asyncio, json, os, sys
sys.path.insert(0, os.environ["BENCH_ROOT"])
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
import django
django.setup()
from runtime.tool_types import ToolCall, ToolInvocation
from agents.tools.executor import ToolExecutor
from agents.tools.http import HttpTool

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return 0.0

tool = HttpTool(name="huge", description="Answers hugely.", url=os.environ["BENCH_URL"], method="GET",
                allow_private=True, timeout_ms=120_000)
before = status("VmRSS")
result = asyncio.run(ToolExecutor([tool]).execute(ToolCall("c1", "huge", "{}"),
                                                  ToolInvocation(session=None, speech_handle=None)))
print(json.dumps({"rss_before_mb": round(before, 1), "rss_after_mb": round(status("VmRSS"), 1),
                  "peak_mb": round(status("VmHWM"), 1), "error_kind": result.error_kind,
                  "output": result.output[:160], "output_chars": len(result.output)}))
"""


class _Huge(BaseHTTPRequestHandler):
    size = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        sized = "unsized" not in self.path
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if sized:
            self.send_header("Content-Length", str(self.size))
        self.end_headers()
        sent = 0
        try:
            while sent < self.size:
                part = BLOCK[: min(len(BLOCK), self.size - sent)]
                self.wfile.write(part)
                sent += len(part)
        except (BrokenPipeError, ConnectionResetError):  # the worker stopped reading
            pass


def run_worker(url: str) -> dict[str, Any]:
    env = {**os.environ, "BENCH_ROOT": str(ROOT), "BENCH_URL": url}
    done = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"worker failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=150, help="size of the answer in MB")
    args = parser.parse_args()
    _Huge.size = args.mb * 1024 * 1024
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Huge)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    figures: dict[str, Any] = {"answer_mb": args.mb}
    try:
        for label, path in (("sized", "/answer"), ("unsized", "/answer?unsized=1")):
            r = run_worker(base + path)
            growth = round(r["peak_mb"] - r["rss_before_mb"], 1)
            figures[label] = {**r, "peak_growth_mb": growth}
            print(f"{label:8s} answer {args.mb} MB: RSS {r['rss_before_mb']} MB before, {r['rss_after_mb']} MB after, "
                  f"peak {r['peak_mb']} MB (+{growth} MB); error_kind={r['error_kind']}; {r['output'][:100]!r}")
    finally:
        server.shutdown()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
