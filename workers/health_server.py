"""Each worker node answers liveness and readiness over HTTP on its health_check_port,
so an orchestrator can probe worker pods as it probes the web pods.

GET /health/live  200 while the process and its session loop respond
GET /health/ready 200 while the node is registered, not draining, its Celery consumer is
                  connected and consuming, its heartbeat is fresh and the database
                  answers; 503 with a `reason` otherwise (a draining node leaves the
                  load balancer's rotation but stays alive until its sessions end)
GET /metrics      Prometheus text: this process's series and node gauges (workers/node_metrics.py)
"""
from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST
from django.db import close_old_connections, connection
from django.utils import timezone

from workers.consumer_health import consumer_state
from workers.models import Worker, WorkerStatus
from workers.node import node
from workers.node_metrics import render_node_metrics
from workers.session_host import host

log = logging.getLogger(__name__)
_server: ThreadingHTTPServer | None = None


def liveness() -> tuple[bool, dict[str, Any]]:
    try:
        host.run(_noop(), timeout=2.0)
        loop_ok = True
    except Exception:  # noqa: BLE001
        loop_ok = False
    return loop_ok, {"session_loop": "ok" if loop_ok else "stuck"}


async def _noop() -> None:
    return None


def readiness() -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {"worker_id": node.worker_id, "active_jobs": node.active_jobs}
    checks["draining"] = node.draining
    consumer = consumer_state.health(shutdown_requested=node.draining or node.stopping)
    checks["consumer"] = "ok" if consumer.ok else consumer.reason
    try:
        close_old_connections()
        row = Worker.objects.filter(pk=node.worker_id).values("status", "last_heartbeat_at").first()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        row = None
        checks["database"] = f"error: {type(exc).__name__}"
    finally:
        connection.close()
    fresh = bool(row and row["last_heartbeat_at"] and
                 row["last_heartbeat_at"] >= timezone.now() - timedelta(seconds=settings.WORKER_OFFLINE_AFTER_SECONDS))
    checks["registered"] = bool(row) and row["status"] != WorkerStatus.OFFLINE
    checks["heartbeat"] = "ok" if fresh else "stale"
    ok = checks["database"] == "ok" and checks["registered"] and fresh and not node.draining and consumer.ok
    if not ok:
        checks["reason"] = _first_reason(checks, consumer.reason)
    return ok, checks


def _first_reason(checks: dict[str, Any], consumer_reason: str) -> str:
    if checks["draining"]:
        return "draining"
    if checks["consumer"] != "ok":
        return f"celery consumer not consuming: {consumer_reason}"
    if checks["database"] != "ok":
        return f"database unreachable ({checks['database']})"
    if not checks["registered"]:
        return "worker not registered (or marked offline)"
    return "heartbeat stale"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: keep logs quiet
        return

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0].rstrip("/")
        if path in ("/health/live", "/live", "/healthz"):
            ok, body = liveness()
        elif path in ("/health/ready", "/ready", "/health"):
            ok, body = readiness()
        elif path == "/metrics":
            self._send_metrics()
            return
        else:
            self._send(404, {"error": "not found"})
            return
        self._send(200 if ok else 503, {"status": "ok" if ok else "unavailable", **body})

    def _send_metrics(self) -> None:
        data = render_node_metrics()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def start_health_server(port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Start (once per process) and return the server; port 0 picks a free port."""
    global _server
    if _server is not None:
        return _server
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="worker-health", daemon=True).start()
    _server = server
    log.info("worker health endpoints on http://%s:%d/health/{live,ready}", host, server.server_address[1])
    return server


def stop_health_server() -> None:
    global _server
    if _server is not None:
        _server.shutdown()
        _server.server_close()
        _server = None
