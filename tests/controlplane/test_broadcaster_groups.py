"""controlplane.broadcaster.asend sends a hand-over's groups concurrently on channels_redis:
every group gets its messages, one group's messages in hand-over order, and a group that
fails does not stop the others."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from controlplane import broadcaster


@pytest.fixture
def redis_layer(monkeypatch: pytest.MonkeyPatch) -> RedisChannelLayer:
    assert settings.REDIS_URL, "set REDIS_URL: this test talks to a real channels_redis layer"
    layer = RedisChannelLayer(hosts=[settings.REDIS_URL], prefix=f"bt-{uuid.uuid4().hex[:8]}", capacity=100, expiry=60)
    monkeypatch.setattr(broadcaster, "get_channel_layer", lambda: layer)
    return layer


def test_groups_go_out_together_and_each_group_keeps_its_order(redis_layer: RedisChannelLayer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broadcaster, "SEND_CONCURRENCY", 3)  # fewer than the groups: the bound is exercised
    groups = [f"g{i}" for i in range(6)]
    real_send = redis_layer.group_send
    in_flight = {"now": 0, "max": 0}

    async def group_send(group: str, message: dict[str, Any]) -> None:
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        try:
            await real_send(group, message)
        finally:
            in_flight["now"] -= 1

    monkeypatch.setattr(redis_layer, "group_send", group_send)

    async def scenario() -> dict[str, list[int]]:
        channels = {}
        for group in groups:
            channels[group] = await redis_layer.new_channel()
            await redis_layer.group_add(group, channels[group])
        sends: list[tuple[str, dict[str, Any]]] = [(group, {"type": "t", "n": n}) for n in range(3) for group in groups]
        await broadcaster.asend(sends)
        got = {}
        for group in groups:
            got[group] = [(await asyncio.wait_for(redis_layer.receive(channels[group]), 5))["n"] for _ in range(3)]
        await redis_layer.flush()
        return got

    assert asyncio.run(scenario()) == {group: [0, 1, 2] for group in groups}
    assert in_flight["max"] == 3  # concurrent across groups, never more than the bound


def test_a_failing_group_does_not_stop_the_others(redis_layer: RedisChannelLayer, monkeypatch: pytest.MonkeyPatch) -> None:
    real_send = redis_layer.group_send

    async def group_send(group: str, message: dict[str, Any]) -> None:
        if group == "broken":
            raise ConnectionError("redis said no")
        await real_send(group, message)

    monkeypatch.setattr(redis_layer, "group_send", group_send)

    async def scenario() -> list[int]:
        channel = await redis_layer.new_channel()
        await redis_layer.group_add("fine", channel)
        await broadcaster.asend([("broken", {"type": "t", "n": 0}), ("fine", {"type": "t", "n": 1}),
                                 ("broken", {"type": "t", "n": 2}), ("fine", {"type": "t", "n": 3})])
        got = [(await asyncio.wait_for(redis_layer.receive(channel), 5))["n"] for _ in range(2)]
        await redis_layer.flush()
        return got

    assert asyncio.run(scenario()) == [1, 3]
