"""The README's run command: everything in one process, no external services."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import wait_until_serving

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")}
    env["CONTROLPLANE_VAR_DIR"] = str(tmp_path)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_embedded_server_answers_health_and_the_printed_login_works(embedded_env: dict[str, str]) -> None:
    manage(embedded_env, "migrate", "--noinput", "-v0")
    manage(embedded_env, "load_demo")
    printed = manage(embedded_env, "ensure_login", "--username", "admin")
    password = re.search(r"password=(\S+)", printed).group(1)  # type: ignore[union-attr]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "embedded", "--port", str(port)], cwd=ROOT, env=embedded_env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(f"{base}/health", server, timeout=60, interval=0.3,
                           output=lambda: server.stdout.read() if server.stdout and server.poll() is not None else "")
        health = httpx.get(f"{base}/health", timeout=2)
        assert health.status_code == 200 and health.json() == {"status": "ok"}

        with httpx.Client(base_url=base, timeout=5) as client:
            login_page = client.get("/admin/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)  # type: ignore[union-attr]
            response = client.post(
                "/admin/login/?next=/admin/",
                data={"csrfmiddlewaretoken": token, "username": "admin", "password": password, "next": "/admin/"},
                headers={"Referer": f"{base}/admin/login/"},
            )
            assert response.status_code == 302 and response.headers["location"] == "/admin/"
            assert "Site administration" in client.get("/admin/").text
    finally:
        server.terminate()
        server.wait(timeout=20)
