"""The LiveKit server double in its own network namespace and process, and its test client.

libwebrtc gathers no ICE candidates on loopback interfaces, so a worker on this host cannot
reach a WebRTC server on 127.0.0.1. `NetworkNamespace` makes `<prefix>-<n>` with a veth pair
(`10.<subnet>.<n>.1` on the host side, `.2` inside); `LiveKitDoubleProcess` runs
`tests/doubles/livekit_server.py` inside it, listening on `.2` only, and the worker under
test reaches it across the veth. Nothing is sent to any other address: the double has no
ICE servers and its namespace has no other interface than `lo`.

Creating namespaces needs root (CI runs as root); where it cannot, this raises
`NetnsUnavailable` with the command's error, and the fixtures fail the test with it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PREFIX = os.environ.get("TEST_NETNS_PREFIX", "lk14")
SUBNET = os.environ.get("TEST_NETNS_SUBNET", "10.214")  # the first two octets


class NetnsUnavailable(RuntimeError):
    pass


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise NetnsUnavailable(f"`ip {' '.join(args)}` failed: {done.stderr.strip() or done.returncode}")


class NetworkNamespace:
    def __init__(self) -> None:
        taken = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        used = {line.split()[0] for line in taken.splitlines() if line.strip()}
        # a free index; pid-based start so two test processes rarely probe the same ones
        for i in range(254):
            n = (os.getpid() + i) % 254 + 1
            if f"{PREFIX}-{n}" not in used:
                break
        else:
            raise NetnsUnavailable("no free namespace index")
        self.index = n
        self.name = f"{PREFIX}-{n}"
        self.host_if, self.ns_if = f"{PREFIX}h{n}", f"{PREFIX}n{n}"
        self.host_address = f"{SUBNET}.{n}.1"
        self.address = f"{SUBNET}.{n}.2"
        self._created = False

    def create(self) -> NetworkNamespace:
        try:
            _ip("netns", "add", self.name)
            self._created = True
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.name)
            _ip("addr", "add", f"{self.host_address}/24", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            _ip("-n", self.name, "addr", "add", f"{self.address}/24", "dev", self.ns_if)
            _ip("-n", self.name, "link", "set", self.ns_if, "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
        except (NetnsUnavailable, FileNotFoundError) as exc:
            self.remove()
            raise NetnsUnavailable(f"cannot create network namespace {self.name} (needs root and iproute2): {exc}") from exc
        return self

    def remove(self) -> None:
        # deleting the namespace deletes its veth end, which deletes the pair
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        if self._created:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
            self._created = False

    def __enter__(self) -> NetworkNamespace:
        return self.create()

    def __exit__(self, *exc: Any) -> None:
        self.remove()


class LiveKitDoubleClient:
    """The test's side of the double: its `/_double/…` JSON endpoints."""

    def __init__(self, http_url: str) -> None:
        self.http_url = http_url.rstrip("/")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.http_url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"double {method} {path}: {exc.code} {exc.read().decode(errors='replace')}") from None

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/_double/state")

    def room(self, name: str) -> dict[str, Any] | None:
        return self.state()["rooms"].get(name)

    def add_caller(self, room: str, identity: str, *, kind: str = "standard", publish_audio: bool = True,
                   name: str = "") -> dict[str, Any]:
        return self._call("POST", f"/_double/rooms/{room}/participants",
                          {"identity": identity, "kind": kind, "publish_audio": publish_audio, "name": name})

    def speak(self, room: str, identity: str, wav: str | Path) -> float:
        """Queue a WAV on the caller's microphone; returns its duration in seconds."""
        return float(self._call("POST", f"/_double/rooms/{room}/participants/{identity}/speak",
                                {"wav": str(wav)})["duration_s"])

    def caller(self, room: str, identity: str, *, audio: bool = False, loud_above: float | None = None) -> dict[str, Any]:
        """What the caller received (tracks with frame times and levels, text streams) and spoke;
        with `loud_above`, each track's `loud_times` instead of every frame's time and level."""
        query = [*(["audio=1"] if audio else []), *([f"loud_above={loud_above}"] if loud_above is not None else [])]
        return self._call("GET", f"/_double/rooms/{room}/participants/{identity}" + ("?" + "&".join(query) if query else ""))

    def chat(self, room: str, identity: str, text: str) -> None:
        self._call("POST", f"/_double/rooms/{room}/participants/{identity}/chat", {"text": text})

    def leave(self, room: str, identity: str) -> None:
        self._call("DELETE", f"/_double/rooms/{room}/participants/{identity}")

    def delete_room(self, room: str) -> None:
        self._call("POST", f"/_double/rooms/{room}/delete", {})

    def drop_signal(self, room: str, identity: str) -> None:
        self._call("POST", f"/_double/rooms/{room}/clients/{identity}/drop", {})


class LiveKitDoubleProcess:
    """`python -m tests.doubles.livekit_server` inside a namespace, until `stop()` / `vanish()`."""

    def __init__(self, netns: NetworkNamespace, *, api_key: str, api_secret: str, port: int = 7880,
                 log_path: Path | None = None) -> None:
        self.netns, self.api_key, self.api_secret, self.port = netns, api_key, api_secret, port
        self.log_path = log_path or Path(f"/tmp/{netns.name}-double.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = LiveKitDoubleClient(self.http_url)

    @property
    def url(self) -> str:
        return f"ws://{self.netns.address}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.netns.address}:{self.port}"

    def start(self, timeout: float = 20.0) -> LiveKitDoubleProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns.name, sys.executable, "-m", "tests.doubles.livekit_server",
             "--host", self.netns.address, "--port", str(self.port), "--api-key", self.api_key,
             "--api-secret", self.api_secret],
            cwd=ROOT, env=env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NetnsUnavailable(f"the LiveKit double exited at start:\n{self.log()}")
            try:
                self.client.state()
                return self
            except (OSError, AssertionError):
                time.sleep(0.1)
        raise NetnsUnavailable(f"the LiveKit double did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def vanish(self) -> None:
        """The server process is gone at once (SIGKILL): sockets closed, no Leave sent."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
