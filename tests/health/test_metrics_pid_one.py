"""Containers sharing PROMETHEUS_MULTIPROC_DIR all run their main process as PID 1: their
files must not collide, or /metrics loses increments (4,000 once summed to 2,357)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.health.test_metrics import scrape

pytestmark = pytest.mark.django_db

INCREMENTS = 2000
# a container's main process: PID 1 in its own PID namespace, its own host name (the
# container id under Docker); both count sessions at once into the shared directory
CONTAINER = """
import os, socket, sys, time
import django
django.setup()
from sessions import metrics
assert os.getpid() == 1, os.getpid()
ready, go = sys.argv[1], sys.argv[2]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.01)
for _ in range({n}):
    metrics.SESSIONS_ENDED.labels("completed").inc()
print(socket.gethostname(), os.getpid())
""".format(n=INCREMENTS)


def unshare_prefix() -> list[str]:
    """unshare(1) with new PID and UTS namespaces; unprivileged through a user namespace."""
    unshare = shutil.which("unshare")
    assert unshare, "the test needs unshare(1) (util-linux)"
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [unshare, *user, "--pid", "--fork", "--uts"]


def test_two_pid_1_processes_sharing_the_directory_add_up(client: Client, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared), "DJANGO_SETTINGS_MODULE": "controlplane.settings"}
    go = tmp_path / "go"
    procs = []
    for name in ("container-a", "container-b"):
        ready = tmp_path / f"{name}.ready"
        script = f"hostname {name} && exec {sys.executable} -c '{CONTAINER}' {ready} {go}"
        procs.append((ready, subprocess.Popen([*unshare_prefix(), "sh", "-c", script], env=env, text=True,
                                              cwd=django_settings.BASE_DIR, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE)))
    for ready, proc in procs:
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()
    go.touch()  # both started: increment at the same time
    outputs = []
    for _, proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.split())
    assert sorted(outputs) == [["container-a", "1"], ["container-b", "1"]]  # two PID 1s, as in compose

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    assert scrape(client)[("controlplane_sessions_ended_total", (("outcome", "completed"),))] == 2 * INCREMENTS
    files = sorted(p.name for p in shared.glob("counter_*.db"))
    assert len(files) == 2 and all(("container-a-1-" in f) != ("container-b-1-" in f) for f in files), files
