"""controlplane.channel_layer.BatchingRedisChannelLayer receives a process's channels with ONE
reader task: every consumer gets its own messages in order, a consumer that goes away leaves
no buffer, a late message for it is dropped after the layer's expiry, a Redis error reaches
the waiting receivers, and the reader stops once nobody receives."""
from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import pytest
from django.conf import settings

from controlplane.channel_layer import BatchingRedisChannelLayer
from controlplane.redis_group_send import group_send_many

pytestmark = pytest.mark.timeout(60)


def make_layer(url: str | None = None, **config: Any) -> BatchingRedisChannelLayer:
    url = url or settings.REDIS_URL
    assert url, "set REDIS_URL: this test talks to a real Redis"
    return BatchingRedisChannelLayer(hosts=[url], prefix=f"cl-{uuid.uuid4().hex[:8]}",
                                     **{"capacity": 100, "expiry": 60, **config})


def readers() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "channel-layer-reader" and not t.done()]


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_many_consumers_get_their_own_messages_in_order_through_one_reader() -> None:
    layer = make_layer()

    async def scenario() -> tuple[dict[str, list[int]], int]:
        channels = [await layer.new_channel() for _ in range(30)]
        for i, channel in enumerate(channels):
            await layer.group_add(f"g{i}", channel)
        got: dict[str, list[int]] = {channel: [] for channel in channels}
        most_readers = 0

        async def consume(channel: str) -> None:
            nonlocal most_readers
            while len(got[channel]) < 6:
                message = await layer.receive(channel)
                got[channel].append(message["n"])
                most_readers = max(most_readers, len(readers()))

        consumers = [asyncio.create_task(consume(channel)) for channel in channels]
        await asyncio.sleep(0.05)
        for n in range(3):  # group sends packed per round (redis_group_send), then single sends
            await group_send_many(layer, {f"g{i}": [{"type": "t", "n": n}] for i in range(len(channels))})
        for n in range(3, 6):
            for channel in channels:
                await layer.send(channel, {"type": "t", "n": n})
        await asyncio.wait_for(asyncio.gather(*consumers), 20)
        await layer.flush()
        return got, most_readers

    got, most_readers = asyncio.run(scenario())
    assert all(numbers == [0, 1, 2, 3, 4, 5] for numbers in got.values()), got
    assert most_readers == 1


def test_a_consumer_that_goes_away_leaves_no_buffer_and_a_late_message_expires() -> None:
    layer = make_layer(expiry=1)

    async def scenario() -> tuple[bool, bool, bool]:
        gone, staying = await layer.new_channel(), await layer.new_channel()
        waiting = asyncio.create_task(layer.receive(gone))
        await asyncio.sleep(0.05)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        no_buffer_after_cancel = gone not in layer.receive_buffer
        # a message for the consumer that went away arrives while another one still receives
        listener = asyncio.create_task(layer.receive(staying))
        await layer.send(gone, {"type": "late"})
        await wait_until(lambda: gone in layer.receive_buffer)
        buffered_late = True
        # the reader drops it once nobody received from that channel for `expiry` seconds
        await layer.send(staying, {"type": "tick"})
        await listener
        async def keep_reading() -> None:
            while True:
                await layer.receive(staying)

        keeps_reading = asyncio.create_task(keep_reading())

        async def ticks() -> None:
            while gone in layer.receive_buffer:
                await layer.send(staying, {"type": "tick"})
                await asyncio.sleep(0.2)

        await asyncio.wait_for(ticks(), 15)
        keeps_reading.cancel()
        await asyncio.gather(keeps_reading, return_exceptions=True)
        await layer.flush()
        return no_buffer_after_cancel, buffered_late, gone not in layer.receive_buffer

    assert asyncio.run(scenario()) == (True, True, True)


def test_a_receive_that_timed_out_loses_nothing_sent_after_it() -> None:
    layer = make_layer()

    async def scenario() -> list[str]:
        channel = await layer.new_channel()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(channel), 0.2)
        await layer.send(channel, {"type": "a"})
        await layer.send(channel, {"type": "b"})
        got = [(await asyncio.wait_for(layer.receive(channel), 10))["type"] for _ in range(2)]
        await layer.flush()
        return got

    assert asyncio.run(scenario()) == ["a", "b"]


def test_a_full_buffer_drops_its_oldest_message_as_channels_redis_does() -> None:
    layer = make_layer(capacity=3)

    async def scenario() -> list[int]:
        slow, other = await layer.new_channel(), await layer.new_channel()
        listener = asyncio.create_task(layer.receive(other))  # keeps the reader popping
        await layer.group_add("slow", slow)
        for n in range(5):  # each popped into the slow consumer's buffer before the next is sent
            await group_send_many(layer, {"slow": [{"type": "t", "n": n}]})
            await wait_until(lambda: slow in layer.receive_buffer and layer.receive_buffer[slow].qsize()
                             and layer.receive_buffer[slow]._queue[-1]["n"] == n)
        assert layer.receive_buffer[slow].qsize() == 3
        got = [(await layer.receive(slow))["n"] for _ in range(3)]
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await layer.flush()
        return got

    assert asyncio.run(scenario()) == [2, 3, 4]


def test_the_reader_stops_once_nobody_receives() -> None:
    layer = make_layer()
    layer.brpop_timeout = 1

    async def scenario() -> tuple[int, int]:
        channel = await layer.new_channel()
        waiting = asyncio.create_task(layer.receive(channel))
        await wait_until(lambda: len(readers()) == 1)
        during = len(readers())
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await wait_until(lambda: not readers())  # after its current pop times out
        await layer.flush()
        return during, len(readers())

    assert asyncio.run(scenario()) == (1, 0)


@pytest.mark.timeout(120)
def test_a_cancelled_reader_ends_without_waiting_out_its_blocking_pop() -> None:
    """Python 3.11's asyncio.wait_for, which redis-py's command send runs in, returns the
    result and drops a cancel that arrives as the write completes: the reader, cancelled while
    it opened its connection, went on into a blocking pop and ended only when that timed out
    (5 s at every async test's loop teardown; a process's shutdown late by as much). A pop of
    a minute here: a reader that waits it out fails the wait below. Cancelled after 0..39 loop
    turns, so some land in the connection's handshake."""
    missed = []
    for turns in range(40):
        layer = make_layer()
        layer.brpop_timeout = 60

        async def scenario(turns: int = turns, layer: BatchingRedisChannelLayer = layer) -> bool:
            channel = await layer.new_channel()
            waiting = asyncio.create_task(layer.receive(channel))
            while not readers():
                await asyncio.sleep(0)
            reader = readers()[0]
            for _ in range(turns):
                await asyncio.sleep(0)
            waiting.cancel()
            reader.cancel()
            done, _ = await asyncio.wait([reader], timeout=5)
            await asyncio.gather(waiting, return_exceptions=True)
            await layer.flush()
            return bool(done)

        if not asyncio.run(scenario()):
            missed.append(turns)
            break  # one is enough: each costs the 5 s wait
    assert missed == [], f"a reader still popping 5 s after its cancel (cancelled after {missed} loop turns)"


def test_a_redis_error_reaches_the_waiting_receivers() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    layer = make_layer(f"redis://127.0.0.1:{port}/0")

    async def scenario() -> list[BaseException | Any]:
        channels = [await layer.new_channel() for _ in range(3)]
        return await asyncio.wait_for(asyncio.gather(*(layer.receive(c) for c in channels), return_exceptions=True), 20)

    results = asyncio.run(scenario())
    assert len(results) == 3 and all(isinstance(r, Exception) and "onnect" in str(r) for r in results), results


def test_a_backlog_is_taken_off_the_key_in_few_pops_in_order_and_leaves_no_backup() -> None:
    layer = make_layer(capacity=500)

    async def scenario() -> tuple[list[int], int, int]:
        channel = await layer.new_channel()
        for n in range(250):  # queued in Redis before anyone receives
            await layer.send(channel, {"type": "t", "n": n})
        pops = 0
        real_pop = layer._pop

        async def counted(real_channel: str) -> Any:
            nonlocal pops
            popped = await real_pop(real_channel)
            pops += bool(popped)
            return popped

        layer._pop = counted  # type: ignore[method-assign]
        got = [(await asyncio.wait_for(layer.receive(channel), 10))["n"] for _ in range(250)]
        await layer.wait_received()
        key = layer.prefix + layer.non_local_name(channel)
        in_backup = await layer.connection(0).zcard(layer._backup_channel_name(key))
        await layer.flush()
        return got, pops, in_backup

    got, pops, in_backup = asyncio.run(scenario())
    assert got == list(range(250))
    assert pops <= 4  # a hundred entries a pop, not one
    assert in_backup == 0


def test_more_blocking_receives_than_redis_pys_default_pool_all_get_their_message() -> None:
    # a worker's sessions each wait on their own control channel (not process-local): one
    # connection per waiting receive; redis-py's default pool stops at 100
    layer = make_layer()

    async def scenario() -> list[Any]:
        channels = [f"control.{uuid.uuid4().hex}" for _ in range(130)]
        receives = [asyncio.create_task(layer.receive(channel)) for channel in channels]
        await asyncio.sleep(0.5)  # every receive is in its blocking pop
        for i, channel in enumerate(channels):
            await layer.send(channel, {"type": "t", "n": i})
        got = await asyncio.wait_for(asyncio.gather(*receives, return_exceptions=True), 30)
        await layer.flush()
        return got

    got = asyncio.run(scenario())
    assert [type(g).__name__ for g in got if not isinstance(g, dict)] == []
    assert [g["n"] for g in got] == list(range(130))
