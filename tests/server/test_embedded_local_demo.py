"""Issue 11's first look, the README's way: `scripts/run` on a machine with no provider
environment, log in with the printed password, start the demo agent in the playground, type
"What's the weather in Paris?" — get_weather runs, the scripted reply comes back and is spoken."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import wait_for, wait_until_serving
from tests.server.test_embedded_run import ROOT, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
SCRUBBED = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "PYTEST_CURRENT_TEST",
            "OPENAI_API_KEY", "OPENAI_BASE_URL", "DEMO_PROVIDERS", "DEMO_LLM_MODEL")


class RunScript:
    """`scripts/run` as a subprocess (its own process group), with its printed output kept."""

    def __init__(self, var_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        self.env.update({"CONTROLPLANE_VAR_DIR": str(var_dir), "PORT": str(self.port), "PYTHONUNBUFFERED": "1"})
        self.log = var_dir / "run.log"
        self.proc = subprocess.Popen([str(ROOT / "scripts" / "run")], cwd=ROOT, env=self.env, start_new_session=True,
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        wait_until_serving(f"{self.url}/health/live", self.proc, timeout=150, output=self.output, interval=0.3)

    def manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture
def run_script(tmp_path: Path) -> Iterator[RunScript]:
    server = RunScript(tmp_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def logged_in(server: RunScript) -> httpx.Client:
    password = re.search(r"login: username=admin password=(\S+)", server.output())
    assert password, server.output()
    client = httpx.Client(base_url=server.url, timeout=10)
    page = client.get("/accounts/login/?next=/playground/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    done = client.post("/accounts/login/?next=/playground/", headers={"Referer": f"{server.url}/accounts/login/"},
                       data={"csrfmiddlewaretoken": token, "username": "admin", "password": password.group(1),
                             "next": "/playground/"})
    assert done.status_code == 302, done.text
    assert 'value="demo"' in client.get("/playground/").text
    return client


def post_form(client: httpx.Client, server: RunScript, path: str, data: dict[str, str]) -> httpx.Response:
    """As the page's Dash.postForm does: a form post with the CSRF cookie's token."""
    return client.post(path, data=data, headers={"X-CSRFToken": client.cookies["csrftoken"],
                                                 "Referer": f"{server.url}/playground/"})


def events_until(server: RunScript, session_id: str, key: str, done: Any) -> list[dict[str, Any]]:
    api = httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {key}"})
    seen: list[dict[str, Any]] = []

    def finished() -> bool:
        page = api.get(f"/api/v1/sessions/{session_id}/events/", params={"limit": 1000})
        assert page.status_code == 200, page.text
        seen[:] = page.json()["results"]
        return bool(done(seen))

    wait_for(finished, timeout=60, interval=0.3, what=lambda: f"the session's events; got {[e['type'] for e in seen]}")
    return seen


def test_a_fresh_run_answers_the_weather_in_the_playground_with_a_tool_and_a_spoken_scripted_reply(
        run_script: RunScript) -> None:
    out = run_script.output()
    assert "providers=local" in out, out
    client = logged_in(run_script)
    started = post_form(client, run_script, "/playground/start", {"agent": "demo"})
    assert started.status_code == 201, started.text
    job_id = started.json()["job_id"]
    def session_started() -> str:
        job = client.get(f"/jobs/{job_id}/status.json").json()
        assert job["status"] not in ("failed", "cancelled", "completed"), job
        return job["session_id"]

    session_id = wait_for(session_started, timeout=60, interval=0.3, what="the job's session")
    key = run_script.manage("create_api_key", "--name", "issue-11", "--scopes", "read").strip()

    def active(events: list[dict[str, Any]]) -> bool:
        return any(e["type"] == "state_changed" and e["data"]["new_state"] == "active" for e in events)

    assert active(events_until(run_script, session_id, key, active))
    sent = post_form(client, run_script, f"/sessions/{session_id}/actions/message",
                     {"text": "What's the weather in Paris?"})
    assert sent.status_code == 202, sent.text

    def replied(events: list[dict[str, Any]]) -> bool:
        return any(e["type"] in ("response_generated", "error") for e in events) and any(
            e["type"] == "metrics_collected" for e in events)

    events = events_until(run_script, session_id, key, replied)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_type.setdefault(e["type"], []).append(e["data"])
    assert "error" not in by_type, by_type["error"]
    assert [(c["name"], c["arguments"]) for c in by_type["tool_called"]] == [("get_weather", '{"city": "Paris"}')]
    result = by_type["tool_completed"][0]["output"]
    assert result.startswith("The weather in Paris is ")
    reply = by_type["response_generated"][0]
    assert reply["text"] == result and reply["scripted"] is True and reply["model"] == "scripted"
    spoken = by_type["tts_audio"]
    assert spoken and " ".join(s["text"] for s in spoken) == result
    assert all(s["duration_ms"] > 200 and s["bytes"] > 0 for s in spoken)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert post_form(client, run_script, f"/sessions/{session_id}/actions/end", {}).status_code == 202
