"""The unacked bookkeeping of the worker's broker transport (controlplane.broker_bookkeeping):
on the hub's thread deliveries and acks are queued and go out together on the loop's next
turn; from any other thread at once; a reject or a restore sends the queue first, so no
delivered message escapes the restore and no acked one comes back."""
from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue
from kombu.asynchronous import Hub

from controlplane.broker_transport import Transport

pytestmark = pytest.mark.integration
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/1"


@pytest.fixture
def broker() -> Any:
    queue = Queue(f"qos-{uuid.uuid4().hex[:8]}", Exchange("qos-test", type="direct"), routing_key="k")
    conn = Connection(REDIS_URL, transport=Transport)
    channel = conn.channel()
    bound = queue(channel)
    bound.declare()
    producer = conn.Producer(channel)
    yield conn, channel, bound, lambda n: producer.publish({"n": n}, exchange=queue.exchange, routing_key="k", declare=[queue])
    bound.purge()
    conn.release()


def on_the_hub(conn: Connection) -> Transport:
    """This thread stands for the worker's hub: the transport registered with a real kombu Hub."""
    transport = conn.transport
    transport.register_with_event_loop(conn.connection, Hub())
    assert transport.hub_thread == threading.get_ident()
    return transport


def in_redis(channel: Any, tag: str) -> tuple[bool, bool]:
    return (channel.client.hexists(channel.unacked_key, tag), channel.client.zscore(channel.unacked_index_key, tag) is not None)


def delivered_on_the_hub(broker: Any, n: int) -> tuple[Any, Any, Any, Any]:
    """One published message, taken (unacked) by a consumer polling on the hub's thread:
    (transport, channel, bound queue, message)."""
    conn, channel, bound, publish = broker
    transport = on_the_hub(conn)
    publish(n)
    return transport, channel, bound, bound.get(no_ack=False)


def test_the_hub_tick_sends_what_deliveries_and_acks_queued(broker: Any) -> None:
    conn, channel, bound, publish = broker
    transport = on_the_hub(conn)
    publish(1)
    publish(2)
    first = bound.get(no_ack=False)
    assert in_redis(channel, first.delivery_tag) == (False, False)  # queued until the loop turns
    transport._send_bookkeeping()
    assert in_redis(channel, first.delivery_tag) == (True, True)
    second = bound.get(no_ack=False)
    first.ack()
    transport._send_bookkeeping()  # the second's record and the first's ack, together
    assert in_redis(channel, first.delivery_tag) == (False, False)
    assert in_redis(channel, second.delivery_tag) == (True, True)


def test_another_thread_sends_at_once(broker: Any) -> None:
    _, channel, _, message = delivered_on_the_hub(broker, 1)
    worker = threading.Thread(target=message.ack)
    worker.start()
    worker.join(5)
    # the ack from the other thread sent the delivery's queued record first, then itself
    assert in_redis(channel, message.delivery_tag) == (False, False)


def test_a_restore_at_close_sends_the_queue_first_and_puts_the_message_back(broker: Any) -> None:
    _, channel, bound, message = delivered_on_the_hub(broker, 7)
    assert in_redis(channel, message.delivery_tag) == (False, False)  # not sent yet
    channel.close()  # restores what is unacked, as at shutdown
    with Connection(REDIS_URL, transport=Transport) as fresh:
        again = bound(fresh.channel()).get(no_ack=True)
    assert again is not None and again.payload == {"n": 7}


def test_a_reject_leaves_no_record_a_later_restore_could_find(broker: Any) -> None:
    transport, channel, bound, message = delivered_on_the_hub(broker, 3)
    message.reject()  # not requeued: dropped
    transport._send_bookkeeping()
    assert in_redis(channel, message.delivery_tag) == (False, False)
    assert bound.get(no_ack=True) is None
