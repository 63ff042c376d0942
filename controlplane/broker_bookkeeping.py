"""kombu's Redis ack emulation with its bookkeeping sent once per turn of the worker's event loop.

kombu keeps every delivered, not yet acknowledged message in two Redis keys (the unacked
hash and its index, by delivery time), so a message whose worker vanished is restored to
its queue after `visibility_timeout` (`QoS.restore_visible`). It writes them with one
transaction (MULTI/EXEC) per delivery and another per ack, each a round trip on the
consumer's one thread (bench/dispatch.py's worker in a burst: 18 % of its GIL in those
two, as much as its task bodies). Here both keep the same commands and keys, but the
consumer's thread (the hub) only queues them; they go out in order, in one pipeline, when
its loop turns (`on_tick`, before it polls again): a delivery and the acks of the tasks
that ended meanwhile share one round trip, and nothing waits longer than one loop turn.

What is kept: each delivered message is in the unacked keys before its task could end,
an ack removes it after (one ordered queue, sent under one lock), and whatever reads the
keys (a reject, a restore at close or after the visibility timeout) sends the queue first.
A call from any other thread (the plain drain loop, a test) sends the queue at once, as
kombu does. No MULTI: the index entry of a fresh delivery is never older than the
visibility timeout, so no restore can look at it between its two commands.

If the pipeline fails (Redis down), what it carried is logged and dropped, as kombu's
failing ack is (`Message.ack_log_error`): a lost ack makes Redis re-deliver the message
after the visibility timeout, which the job's claim in the database turns into a no-op; a
lost delivery record leaves a vanished worker's job to the reaper, as the database decides.
"""
from __future__ import annotations

import logging
import threading
from time import time
from typing import Any

from kombu.transport import redis, virtual
from kombu.utils.json import dumps

log = logging.getLogger(__name__)

Command = tuple[Any, ...]


class TickBatchedQoS(redis.QoS):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queued: list[Command] = []
        self._send_lock = threading.Lock()  # held while sending: one order for every thread

    def append(self, message: Any, delivery_tag: str) -> None:
        delivery = message.delivery_info
        self._queue([("ZADD", self.unacked_index_key, time(), delivery_tag),
                     ("HSET", self.unacked_key, delivery_tag,
                      dumps([message._raw, delivery["exchange"], delivery["routing_key"]]))])
        virtual.QoS.append(self, message, delivery_tag)  # the in-process record (not redis.QoS's writes)

    def ack(self, delivery_tag: str) -> None:
        self._queue([("ZREM", self.unacked_index_key, delivery_tag), ("HDEL", self.unacked_key, delivery_tag)])
        virtual.QoS.ack(self, delivery_tag)

    # whatever reads or rewrites the unacked keys sees what was queued before it
    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        self.send_queued()
        super().reject(delivery_tag, requeue=requeue)

    def restore_unacked(self, client: Any = None) -> None:
        self.send_queued()
        super().restore_unacked(client)

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        self.send_queued()
        super().restore_visible(*args, **kwargs)

    def _queue(self, commands: list[Command]) -> None:
        with self._send_lock:
            self._queued.extend(commands)
        if threading.get_ident() != getattr(self.channel.connection, "hub_thread", None):
            self.send_queued()  # no loop turn will send it: now, as kombu does

    def send_queued(self) -> None:
        with self._send_lock:
            commands, self._queued = self._queued, []
            if not commands:
                return
            try:
                with self.channel.conn_or_acquire() as client:
                    pipe = client.pipeline(transaction=False)
                    for command in commands:
                        pipe.execute_command(*command)
                    pipe.execute()
            except Exception:  # noqa: BLE001 - as kombu's failing ack: logged, the database decides
                log.warning("broker bookkeeping: %d unacked-key commands not sent", len(commands), exc_info=True)
