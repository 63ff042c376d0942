"""kombu's Redis transport after Celery detached it from its connection (Connection.collect()):
restoring a channel's unacked messages must not crash the consumer (kombu#970, #582)."""
from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as stock_redis

from controlplane.broker_transport import Transport

pytestmark = pytest.mark.integration
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/1"


def delivered_but_unacked(transport: Any) -> tuple[Connection, Any, Queue]:
    queue = Queue(f"restore-{uuid.uuid4().hex[:8]}", Exchange("restore-test", type="direct"), routing_key="k")
    conn = Connection(REDIS_URL, transport=transport)
    channel = conn.channel()
    bound = queue(channel)
    bound.declare()
    conn.Producer(channel).publish({"n": 1}, exchange=queue.exchange, routing_key="k", declare=[queue])
    message = bound.get(no_ack=False)  # a session's task: delivered, acked only when it ends
    assert message is not None
    return conn, channel, queue


def detach_as_collect_does(conn: Connection) -> None:
    conn._do_close_transport()  # what Celery's consumer leaves behind before closing on a broker loss


def test_the_stock_transport_crashes_restoring_after_collect() -> None:
    conn, channel, queue = delivered_but_unacked(stock_redis.Transport)
    detach_as_collect_does(conn)
    with pytest.raises(AttributeError, match="hostname"):
        channel.close()  # drops its pools, then restores the unacked message


def test_ours_restores_the_unacked_message_to_its_queue() -> None:
    conn, channel, queue = delivered_but_unacked(Transport)
    detach_as_collect_does(conn)
    channel.close()
    with Connection(REDIS_URL, transport=Transport) as fresh:
        again = queue(fresh.channel()).get(no_ack=True)
    assert again is not None and again.payload == {"n": 1}


def test_synchronous_commands_share_one_client_per_pool_and_a_new_pool_gets_its_own() -> None:
    conn, channel, queue = delivered_but_unacked(Transport)
    try:
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second and first.connection_pool is channel.pool
        channel._disconnect_pools()  # as after a connection error
        with channel.conn_or_acquire() as third:
            assert third is not first and third.connection_pool is channel.pool
        # the QoS bookkeeping still works through it: the unacked message, acknowledged, is gone
        [(tag, _)] = list(channel.qos._delivered.items())
        assert channel.client.hexists(channel.unacked_key, tag)
        channel.qos.ack(tag)
        assert not channel.client.hexists(channel.unacked_key, tag)
    finally:
        conn.release()
