"""Hand-overs queued behind the one being sent go out as one: each group still gets its
messages in hand-over order, every hand-over's future is done, and the groups' channels are
read once for them all instead of once per hand-over."""
from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from controlplane import broadcaster as broadcaster_module
from controlplane.broadcaster import Broadcaster
from controlplane.channel_layer import BatchingRedisChannelLayer

GROUPS = [f"g{i}" for i in range(5)]


@pytest.fixture(params=[RedisChannelLayer, BatchingRedisChannelLayer])
def redis_layer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> RedisChannelLayer:
    assert settings.REDIS_URL, "set REDIS_URL: this test talks to a real channels_redis layer"
    layer = request.param(hosts=[settings.REDIS_URL], prefix=f"bt-{uuid.uuid4().hex[:8]}", capacity=100, expiry=60)
    monkeypatch.setattr(broadcaster_module, "get_channel_layer", lambda: layer)
    return layer


class GatedPipelines:
    """The layer's connections, counting pipelines; the first one waits until `gate` is set,
    so the broadcaster's thread is held inside its first delivery while more are queued."""

    def __init__(self, layer: RedisChannelLayer) -> None:
        self.real_connection = layer.connection
        self.gate = threading.Event()
        self.waiting = threading.Event()  # the first pipeline is held at the gate
        self.pipelines = 0

    def connection(self, index: int) -> Any:
        conn, gated = self.real_connection(index), self

        class Counted:
            def pipeline(self, *args: Any, **kwargs: Any) -> Any:
                gated.pipelines += 1
                if gated.pipelines == 1:
                    gated.waiting.set()
                    assert gated.gate.wait(10), "the test never opened the gate"
                return conn.pipeline(*args, **kwargs)

            def __getattr__(self, name: str) -> Any:
                return getattr(conn, name)

        return Counted()


def test_queued_hand_overs_go_out_together_in_order(redis_layer: RedisChannelLayer, monkeypatch: pytest.MonkeyPatch) -> None:
    async def watch() -> dict[str, str]:
        channels = {group: await redis_layer.new_channel() for group in GROUPS}
        for group, channel in channels.items():
            await redis_layer.group_add(group, channel)
        return channels

    channels = asyncio.run(watch())
    gated = GatedPipelines(redis_layer)
    monkeypatch.setattr(redis_layer, "connection", gated.connection)
    sender = Broadcaster()
    first = sender.send([("g0", {"type": "t", "n": 0})])
    assert gated.waiting.wait(10)  # its delivery is under way, held at the gate
    # ten more hand-overs of one message each, queued while the first is being sent
    queued = [sender.send([(GROUPS[n % 5], {"type": "t", "n": n})]) for n in range(1, 11)]
    gated.gate.set()
    assert sender.flush(10)
    assert first.done() and all(done.done() for done in queued)
    sender.stop()
    monkeypatch.undo()

    async def receive() -> dict[str, list[int]]:
        counts = {group: 2 for group in GROUPS}
        counts["g0"] = 3
        got = {group: [(await asyncio.wait_for(redis_layer.receive(channels[group]), 5))["n"] for _ in range(count)]
               for group, count in counts.items()}
        await redis_layer.flush()
        return got

    got = asyncio.run(receive())
    assert got == {"g0": [0, 5, 10], "g1": [1, 6], "g2": [2, 7], "g3": [3, 8], "g4": [4, 9]}
    # the first: its group's channels, its round; the ten queued: their groups' channels once,
    # then two rounds (each group's 1st and 2nd message). One by one they would have made 20
    assert gated.pipelines == 2 + 3
