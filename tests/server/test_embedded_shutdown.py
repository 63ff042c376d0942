"""`scripts/run` (the embedded mode) with a playground session live, then Ctrl-C: the process
exits and the session is stored as ended with reason `shutdown`."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/health", timeout=2).ok
    except requests.RequestException:
        return False


def test_ctrl_c_ends_the_live_playground_session_and_exits(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PYTEST_CURRENT_TEST")}
    env.update(CONTROLPLANE_VAR_DIR=str(tmp_path), HOST="127.0.0.1", PORT=str(port))
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen([str(ROOT / "scripts" / "run")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is None and healthy(base), timeout=240, interval=0.5, what="scripts/run serving")
        web = requests.Session()
        web.get(f"{base}/accounts/login/", timeout=10)
        password = (ROOT / "var" / "admin-password").read_text().strip()
        web.post(f"{base}/accounts/login/", timeout=10, headers={"Referer": f"{base}/accounts/login/"},
                 data={"username": "admin", "password": password, "csrfmiddlewaretoken": web.cookies["csrftoken"]})
        started = web.post(f"{base}/playground/start", data={"agent": "demo"}, timeout=10,
                           headers={"X-CSRFToken": web.cookies["csrftoken"], "Referer": f"{base}/playground/"})
        assert started.status_code == 201, started.text
        job_id = started.json()["job_id"]
        db = sqlite3.connect(tmp_path / "controlplane.sqlite3", timeout=10)

        def session_row() -> tuple[str, str, str] | None:
            return db.execute("SELECT session_id, status, end_reason FROM agent_sessions_agentsession WHERE job_id = ?",
                              (job_id,)).fetchone()

        wait_for(lambda: (row := session_row()) is not None and row[1] in ("connected", "active"), timeout=60,
                 interval=0.2, what="the playground session live")

        proc.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        code = proc.wait(timeout=30)
        exited_after = time.monotonic() - signalled
        session_id, status, end_reason = session_row()  # type: ignore[misc]
        job_status = db.execute("SELECT status FROM workers_job WHERE job_id = ?", (job_id,)).fetchone()[0]
        worker_status = db.execute("SELECT status FROM workers_worker").fetchall()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert code == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert exited_after < 10, f"exited {exited_after:.1f}s after Ctrl-C"
    assert (status, end_reason) == ("disconnected", "shutdown"), (session_id, status, end_reason)
    assert job_status == "completed"
    assert worker_status == [("offline",)]
