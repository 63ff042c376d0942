"""Voice playground audio path: browser frame → audio socket → session → audio socket, round trip.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/audio_bench REDIS_URL=redis://127.0.0.1:6379/6 \\
        .venv/bin/python bench/audio_path.py [--frames 500]

The session end is an echo (`tests/dashboard/audio_peer.py`): each uplink frame goes straight
back down through `AudioLink`, so a frame's round trip is the path both ways. The socket is
the real consumer (`SessionAudioConsumer`, API-key auth) driven through the ASGI interface;
frames are 20 ms of 16 kHz PCM16, sent at real-time pace.

  in_memory   the embedded mode: in-memory channel layer, the socket on one event loop and
              the session's link on another thread's loop of the same process
  redis       production: channels-redis, the session's link in a second process
  baseline    one frame handed to another thread's loop and back (call_soon_threadsafe),
              no channel layer: the floor of the embedded path

Prints p50/p99/max round trip and lost/reordered frames per path, and ratios to the baseline;
the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import ensure_database, summary  # noqa: E402

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/audio_bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
FRAME = 320


def setup() -> tuple[str, str]:
    """A live local session of the demo agent and an API key that may speak into it."""
    import django

    ensure_database(os.environ["DATABASE_URL"])
    django.setup()
    from django.core.management import call_command

    from agents.models import Agent
    from controlplane.models import ApiKey
    from sessions.models import AgentSession, SessionStatus

    call_command("migrate", verbosity=0)
    call_command("load_demo", providers="local", stdout=open(os.devnull, "w"))
    agent = Agent.objects.get(agent_id="demo")
    session = AgentSession.objects.create(agent=agent, agent_version=agent.version, room_id="audio-bench",
                                          transport="local", status=SessionStatus.ACTIVE)
    _, raw = ApiKey.generate(name="audio-bench", scopes=["read", "sessions:control"])
    return session.session_id, raw


def use_layer(redis: bool) -> None:
    from channels.layers import channel_layers
    from django.conf import settings

    if redis:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                               "CONFIG": {"hosts": [os.environ["REDIS_URL"]], "capacity": 5000}}}
    else:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()


def frame(seq: int) -> bytes:
    pcm = np.full(FRAME, 300, dtype="<i2")
    pcm[0], pcm[1] = seq % 30000, seq // 30000
    return pcm.tobytes()


def seq_of(data: bytes) -> int:
    pcm = np.frombuffer(data, dtype="<i2")
    return int(pcm[0]) + int(pcm[1]) * 30000


async def round_trips(session_id: str, token: str, n: int) -> dict[str, Any]:
    from channels.testing import WebsocketCommunicator

    from server.asgi import application

    comm = WebsocketCommunicator(application, f"/ws/sessions/{session_id}/audio/?token={token}",
                                 headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")])
    connected, _ = await comm.connect()
    assert connected
    assert (await comm.receive_json_from(timeout=5))["type"] == "ready"
    sent: dict[int, float] = {}
    rtt: list[float] = []
    order: list[int] = []

    async def receive() -> None:
        while len(order) < n:
            out = await comm.receive_output(timeout=5)
            data = out.get("bytes") or b""
            for i in range(0, len(data), FRAME * 2):  # frames that queued together arrive together
                seq = seq_of(data[i:i + FRAME * 2])
                rtt.append((time.perf_counter() - sent[seq]) * 1000)
                order.append(seq)

    receiver = asyncio.ensure_future(receive())
    start = time.perf_counter()
    for seq in range(n):
        delay = start + seq * 0.02 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[seq] = time.perf_counter()
        await comm.send_to(bytes_data=frame(seq))
    try:
        await asyncio.wait_for(receiver, timeout=10)
    except (asyncio.TimeoutError, AssertionError):
        receiver.cancel()
    await comm.disconnect()
    reordered = sum(1 for a, b in zip(order, order[1:]) if b < a)
    return {**summary(rtt or [0.0]), "max_ms": round(max(rtt or [0.0]), 2), "lost": n - len(order), "reordered": reordered}


def in_memory(session_id: str, token: str, n: int) -> dict[str, Any]:
    """The session's link on its own thread and loop, as the embedded worker's SessionHost."""
    from sessions.audio_link import AudioLink
    from tests.dashboard.audio_peer import Echo

    use_layer(redis=False)
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    link = AudioLink(session_id)
    link.transport.session = Echo(link)

    def host() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(lambda: (link.open(), ready.set()))
        loop.run_forever()

    thread = threading.Thread(target=host, daemon=True)
    thread.start()
    ready.wait(5)
    try:
        return asyncio.run(round_trips(session_id, token, n))
    finally:
        loop.call_soon_threadsafe(link.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def redis(session_id: str, token: str, n: int) -> dict[str, Any]:
    """The session's link in a second process, as a worker's."""
    use_layer(redis=True)
    peer = subprocess.Popen([sys.executable, "-m", "tests.dashboard.audio_peer", session_id], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert peer.stdout is not None and peer.stdout.readline().strip() == b"ready"
        return asyncio.run(round_trips(session_id, token, n))
    finally:
        peer.communicate(timeout=10)


def baseline(n: int) -> dict[str, Any]:
    """A frame to another loop's thread and back, paced like the others."""
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()

    async def run() -> list[float]:
        here = asyncio.get_running_loop()
        rtt: list[float] = []
        for seq in range(n):
            done = here.create_future()
            t0 = time.perf_counter()
            data = frame(seq)
            other.call_soon_threadsafe(lambda d=data: here.call_soon_threadsafe(done.set_result, np.frombuffer(d, "<i2").tobytes()))
            await done
            rtt.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.02)
        return rtt

    try:
        rtt = asyncio.run(run())
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(5)
    return {**summary(rtt), "max_ms": round(max(rtt), 2), "lost": 0, "reordered": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=500, help="20 ms frames per path (500 = 10 s)")
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        sys.exit("set REDIS_URL: the redis path needs a Redis server")
    session_id, token = setup()
    results = {"baseline": baseline(args.frames), "in_memory": in_memory(session_id, token, args.frames),
               "redis": redis(session_id, token, args.frames)}
    for name, r in results.items():
        print(f"{name:10s} round trip p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  max {r['max_ms']:7.2f} ms  "
              f"lost {r['lost']}  reordered {r['reordered']}  (n={r['n']})")
    base = max(results["baseline"]["p50_ms"], 0.001)
    ratios = {f"{k}_p50_over_baseline": round(results[k]["p50_ms"] / base, 1) for k in ("in_memory", "redis")}
    print(", ".join(f"{k} {v}x" for k, v in ratios.items()))
    print(json.dumps({"bench": "audio_path", "frames": args.frames, "frame_ms": 20, **results, **ratios}))


if __name__ == "__main__":
    main()
