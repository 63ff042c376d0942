"""kombu's Redis transport with its channels kept usable after their connection closed.

Celery's consumer, on losing the broker (`Consumer.on_connection_error_after_connected`),
first `collect()`s the connection, which detaches the transport from it
(`transport.client = None`), and then `close()`s it. Closing the default channel restores
its unacknowledged messages (`QoS.restore_unacked`), which builds a new Redis pool from
`transport.client.hostname`: `AttributeError: 'NoneType' object has no attribute
'hostname'` escapes `ignore_errors` (not a connection error) and kills the consumer for
good while the worker process, its heartbeat and its sessions live on (celery/kombu#970,
#582; celery/celery#10205). Every worker hosting a session holds unacked messages
(`acks_late`), so every broker restart hit it. The same lookup breaks the late `ack` of a
session that outlived its connection.

Each channel here remembers the connection parameters it was created with and uses them
when the transport has been detached. The restore then either reaches Redis (the messages
go back to their queue; the database claim turns the re-delivery into a no-op) or fails
with a connection error, which Celery ignores before reconnecting.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kombu.transport import redis

from controlplane.broker_bookkeeping import TickBatchedQoS


class Channel(redis.Channel):
    QoS = TickBatchedQoS  # the unacked bookkeeping, one pipeline per turn of the worker's loop
    _sync_client: tuple[Any, Any] | None = None  # (the pool, the client built around it)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client_info = self.connection.client

    def _create_client(self, asynchronous: bool = False) -> Any:
        """kombu builds a new redis.Redis around the same pool for every synchronous command:
        the QoS bookkeeping of each late-acknowledged task (its append on delivery, its ack),
        and building one cost more than the pipeline it sends (bench/dispatch.py's worker during
        a burst: 7.8 % of its GIL). A Redis client holds no connection of its own (the pool lends
        one per command or pipeline), so one per pool serves them all; a pool replaced after a
        connection error (`_disconnect_pools`) gets a client of its own."""
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        cached = self._sync_client
        if cached is None or cached[0] is not pool:
            cached = self._sync_client = (pool, super()._create_client())
        return cached[1]

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None and self._client_info is not None:
            # detached by Connection.collect(): the parameters have not changed
            self.connection.client = self._client_info
        return super()._connparams(asynchronous=asynchronous)


ConnectionLostListener = Callable[[BaseException], None]
_connection_lost_listeners: list[ConnectionLostListener] = []


def on_connection_lost(listener: ConnectionLostListener) -> None:
    """Call `listener(exc)` the moment a consuming read fails with a connection error, before
    Celery's consumer spends time tearing the connection down (its steps stop only after)."""
    _connection_lost_listeners.append(listener)


def _notify_connection_lost(exc: BaseException) -> None:
    for listener in list(_connection_lost_listeners):
        try:
            listener(exc)
        except Exception:  # noqa: BLE001 - a listener must not change how the error propagates
            pass


class Transport(redis.Transport):
    Channel = Channel
    hub_thread: int | None = None  # the thread of the event loop (hub) this transport polls on

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)
        self.hub_thread = threading.get_ident()
        loop.on_tick.add(self._send_bookkeeping)

    def _send_bookkeeping(self) -> None:
        """Each turn of the hub: the unacked-key commands its deliveries and acks queued."""
        for channel in list(self.channels):
            qos = channel._qos
            if isinstance(qos, TickBatchedQoS):
                qos.send_queued()

    def on_readable(self, fileno: int) -> None:  # the worker's event loop (hub)
        try:
            super().on_readable(fileno)
        except self.connection_errors as exc:
            _notify_connection_lost(exc)
            raise

    def drain_events(self, connection: Any, timeout: float | None = None) -> Any:  # the plain loop
        try:
            return super().drain_events(connection, timeout=timeout)
        except self.connection_errors as exc:
            _notify_connection_lost(exc)
            raise
