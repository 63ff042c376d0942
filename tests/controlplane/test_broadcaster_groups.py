"""controlplane.broadcaster.asend on channels_redis sends a hand-over's groups together
(`controlplane.redis_group_send`): every group's channels get its messages in hand-over
order, exactly as the layer's own group_send would deliver them, in two pipelines per round
instead of four round trips per group; to a BatchingRedisChannelLayer a round's messages
for one process are one Redis entry; a failing Redis is logged, never raised."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from controlplane import broadcaster
from controlplane.channel_layer import BatchingRedisChannelLayer


def make_layer(url: str, cls: type[RedisChannelLayer] = RedisChannelLayer) -> RedisChannelLayer:
    return cls(hosts=[url], prefix=f"bt-{uuid.uuid4().hex[:8]}", capacity=100, expiry=60)


@pytest.fixture(params=[RedisChannelLayer, BatchingRedisChannelLayer])
def redis_layer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> RedisChannelLayer:
    assert settings.REDIS_URL, "set REDIS_URL: this test talks to a real channels_redis layer"
    layer = make_layer(settings.REDIS_URL, request.param)
    monkeypatch.setattr(broadcaster, "get_channel_layer", lambda: layer)
    return layer


def count_pipelines(layer: RedisChannelLayer, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many pipelines the sends run, and how many commands go outside one."""
    counts = {"pipelines": 0, "direct": 0}
    real_connection = layer.connection

    def connection(index: int) -> Any:
        conn = real_connection(index)

        class Counted:
            def pipeline(self, *args: Any, **kwargs: Any) -> Any:
                counts["pipelines"] += 1
                return conn.pipeline(*args, **kwargs)

            def __getattr__(self, name: str) -> Any:
                counts["direct"] += 1
                return getattr(conn, name)

        return Counted()

    monkeypatch.setattr(layer, "connection", connection)
    return counts


def test_groups_go_out_together_and_each_group_keeps_its_order(redis_layer: RedisChannelLayer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    groups = [f"g{i}" for i in range(6)]

    async def scenario() -> tuple[dict[str, list[int]], list[int], dict[str, int]]:
        channels = {}
        for group in groups:
            channels[group] = await redis_layer.new_channel()
            await redis_layer.group_add(group, channels[group])
        second = await redis_layer.new_channel()  # a second watcher of g0
        await redis_layer.group_add("g0", second)
        counts = count_pipelines(redis_layer, monkeypatch)
        sends: list[tuple[str, dict[str, Any]]] = [(group, {"type": "t", "n": n}) for n in range(3) for group in groups]
        await broadcaster.asend(sends)
        monkeypatch.undo()  # receive on the layer's own connections
        got = {}
        for group in groups:
            got[group] = [(await asyncio.wait_for(redis_layer.receive(channels[group]), 5))["n"] for _ in range(3)]
        got_second = [(await asyncio.wait_for(redis_layer.receive(second), 5))["n"] for _ in range(3)]
        await redis_layer.flush()
        return got, got_second, counts

    got, got_second, counts = asyncio.run(scenario())
    assert got == {group: [0, 1, 2] for group in groups}
    assert got_second == [0, 1, 2]
    # the groups' channels read once, then three rounds (each group's 1st, 2nd, 3rd message),
    # one pipeline each, one host; the layer's own group_send would have made 4 round trips per
    # group and message (72)
    assert counts == {"pipelines": 4, "direct": 0}


def test_groups_nobody_is_in_cost_one_pipeline_and_the_watched_one_still_gets_its_messages(
        redis_layer: RedisChannelLayer, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> tuple[list[int], dict[str, int]]:
        watcher = await redis_layer.new_channel()
        await redis_layer.group_add("watched", watcher)
        counts = count_pipelines(redis_layer, monkeypatch)
        sends: list[tuple[str, dict[str, Any]]] = [(f"unwatched-{i}", {"type": "t", "n": -1}) for i in range(20)]
        sends += [("watched", {"type": "t", "n": n}) for n in range(2)]
        await broadcaster.asend(sends)
        monkeypatch.undo()
        got = [(await asyncio.wait_for(redis_layer.receive(watcher), 5))["n"] for _ in range(2)]
        await redis_layer.flush()
        return got, counts

    got, counts = asyncio.run(scenario())
    assert got == [0, 1]
    # one read of all 21 groups' channels, then two rounds for the one group somebody is in
    assert counts == {"pipelines": 3, "direct": 0}


def test_an_unwatched_hand_over_reads_the_groups_and_sends_nothing(redis_layer: RedisChannelLayer,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> dict[str, int]:
        counts = count_pipelines(redis_layer, monkeypatch)
        await broadcaster.asend([(f"nobody-{i}", {"type": "t", "n": i}) for i in range(5)])
        return counts

    assert asyncio.run(scenario()) == {"pipelines": 1, "direct": 0}


def test_a_message_arrives_as_the_layers_own_group_send_delivers_it(redis_layer: RedisChannelLayer) -> None:
    message = {"type": "session.events", "events": [{"seq": 1, "type": "turn_ended", "data": {"text": "hé"}}]}

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        ours, theirs = await redis_layer.new_channel(), await redis_layer.new_channel()
        await redis_layer.group_add("ours", ours)
        await redis_layer.group_add("theirs", theirs)
        await broadcaster.asend([("ours", message)])
        await redis_layer.group_send("theirs", message)
        got = (await asyncio.wait_for(redis_layer.receive(ours), 5), await asyncio.wait_for(redis_layer.receive(theirs), 5))
        await redis_layer.flush()
        return got

    ours, theirs = asyncio.run(scenario())
    assert ours == theirs == message


def test_a_batching_layer_gets_a_rounds_messages_for_one_process_as_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = make_layer(settings.REDIS_URL, BatchingRedisChannelLayer)
    monkeypatch.setattr(broadcaster, "get_channel_layer", lambda: layer)
    groups = [f"s{i}" for i in range(5)]

    async def scenario() -> tuple[int, dict[str, list[int]]]:
        channels = {}
        for group in groups:
            channels[group] = await layer.new_channel()  # all of this process: one Redis key
            await layer.group_add(group, channels[group])
        await broadcaster.asend([(group, {"type": "t", "n": n}) for n in range(2) for group in groups])
        process_key = layer.prefix + layer.non_local_name(channels["s0"])
        entries = await layer.connection(0).zcard(process_key)
        got = {group: [(await asyncio.wait_for(layer.receive(channels[group]), 5))["n"] for _ in range(2)]
               for group in reversed(groups)}
        await layer.flush()
        return entries, got

    entries, got = asyncio.run(scenario())
    assert entries == 2  # one per round, not one per group and round (10)
    assert got == {group: [0, 1] for group in groups}


def test_a_redis_that_refuses_is_logged_not_raised(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    layer = make_layer("redis://127.0.0.1:9/0")  # nothing listens there
    monkeypatch.setattr(broadcaster, "get_channel_layer", lambda: layer)
    asyncio.run(broadcaster.asend([("g", {"type": "t", "n": 0}), ("h", {"type": "t", "n": 1})]))
    assert "broadcast to 2 groups failed" in caplog.text
