"""Whether this worker's Celery consumer can take work: connected to the broker, consuming.

The heartbeat thread keeps running whatever happens to the consumer, so a heartbeat alone
says nothing about whether jobs sent to the worker's queue will start. `ConsumerWatch` is
a consumer bootstep that starts after the task consumer and the remote-control mailbox and
stops when the consumer tears its connection down (broker lost: Celery restarts the
consumer's steps on reconnect) or shuts down. With an event loop (the Redis transport) the
steps only declare: the queues are read (BRPOP) and the mailbox subscribed to (PSUBSCRIBE)
in the loop's first tick, after every step has started. So "consuming" is said from inside
the loop, once that tick has run; said at the step's start it was `online` for the moments
before, long enough for a ping to go unheard after a broker restart. The heartbeat reports the result
(`online` / `unready` with the reason) and `/health/ready` answers 503 meanwhile.

The consumer reconnects every `RECONNECT_INTERVAL_S` while the broker is away: kombu's
default (2 s, then 4, 6 … up to 30 s between attempts) left a worker unready for up to 4 s
after a 3 s broker restart and up to 30 s after a long one.

A consumer that stopped for good while nobody asked the worker to stop is dead (e.g. an
unrecoverable error in Celery's consumer): the process then exits non-zero, so its
supervisor restarts it, rather than staying up with sessions and a heartbeat but no intake.
"""
from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import bootsteps
from celery.bootsteps import CLOSE, RUN, TERMINATE
from celery.worker import state as celery_worker_state
from celery.worker.consumer import Consumer as CeleryConsumer

from controlplane.broker_transport import on_connection_lost


@dataclass(frozen=True)
class ConsumerHealth:
    ok: bool
    reason: str = ""
    dead: bool = False  # stopped for good without a shutdown request


class ConsumerState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._consumer: Any = None
        self._consuming = False
        self._queues: tuple[str, ...] = ()
        self._since = time.monotonic()
        self._reason = "consumer not started yet"
        self._expected = False
        self._generation = 0  # bumped by every stop: a start scheduled before it is stale
        self._listeners: list[Callable[[], None]] = []

    def expect(self) -> None:
        """A Celery worker is starting in this process: not ready until its consumer is."""
        with self._lock:
            self._expected = True

    def on_change(self, listener: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def _changed(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def attach(self, consumer: Any) -> None:
        with self._lock:
            self._consumer = consumer

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    def mark_consuming(self, queues: tuple[str, ...], *, generation: int | None = None) -> None:
        """Consuming now; with `generation`, only if no stop came since it was read."""
        with self._lock:
            if generation is not None and generation != self._generation:
                return
            self._consuming, self._queues, self._since, self._reason = True, queues, time.monotonic(), ""
        self._changed()

    def mark_stopped(self, reason: str) -> None:
        with self._lock:
            if self._consuming:
                self._since = time.monotonic()
            self._consuming, self._reason = False, reason
            self._generation += 1
        self._changed()

    @property
    def watched(self) -> bool:
        """False where no Celery consumer runs in this process (unit tests calling the task directly)."""
        return self._consumer is not None

    def health(self, *, shutdown_requested: bool = False) -> ConsumerHealth:
        with self._lock:
            consumer, consuming, reason, since = self._consumer, self._consuming, self._reason, self._since
            expected = self._expected
        if consumer is None:
            if expected:
                return ConsumerHealth(ok=False, reason=reason)
            return ConsumerHealth(ok=True, reason="no consumer in this process")
        if consuming:
            return ConsumerHealth(ok=True)
        blueprint_state = getattr(getattr(consumer, "blueprint", None), "state", None)
        stopped_for_good = blueprint_state in (CLOSE, TERMINATE)
        asked_to_stop = shutdown_requested or celery_worker_state.should_stop is not None or (
            celery_worker_state.should_terminate is not None)
        seconds = time.monotonic() - since
        if stopped_for_good:
            return ConsumerHealth(ok=False, reason=f"consumer stopped {seconds:.0f}s ago", dead=not asked_to_stop)
        return ConsumerHealth(ok=False, reason=f"{reason} ({seconds:.0f}s)")

    @property
    def queues(self) -> tuple[str, ...]:
        with self._lock:
            return self._queues


consumer_state = ConsumerState()


class ConsumerWatch(bootsteps.StartStopStep):
    """Consumer bootstep: consuming once the task consumer is up; not when it is torn down."""

    # after the task consumer and the remote-control mailbox: both answer once we say "online"
    requires = ("celery.worker.consumer.tasks:Tasks", "celery.worker.consumer.control:Control")

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        consumer_state.attach(c)

    def start(self, c: Any) -> None:
        task_consumer = getattr(c, "task_consumer", None)
        queues = tuple(q.name for q in getattr(task_consumer, "queues", ()) or ())
        hub = getattr(c, "hub", None)
        if hub is None:  # the plain loop (e.g. the in-memory broker) consumes as the steps start
            consumer_state.mark_consuming(queues)
            return
        generation = consumer_state.generation

        def after_first_tick() -> None:
            # the loop runs ready callbacks before its tick callbacks (where kombu sends BRPOP
            # and PSUBSCRIBE): one more round puts this after the first tick's
            if c.connection is not None and c.blueprint.state == RUN:
                consumer_state.mark_consuming(queues, generation=generation)

        hub.call_soon(lambda: hub.call_soon(after_first_tick))

    def stop(self, c: Any) -> None:
        consumer_state.mark_stopped("broker connection lost; reconnecting")

    def shutdown(self, c: Any) -> None:
        consumer_state.mark_stopped("consumer shut down")


RECONNECT_INTERVAL_S = 1.0  # one connection attempt a second: cheap, and no backoff to wait out


class Consumer(CeleryConsumer):
    """Celery's consumer, reconnecting to a lost broker every second."""

    def ensure_connected(self, conn: Any) -> Any:
        # Celery passes no intervals to kombu's retry loop; give this connection ours
        conn.ensure_connection = functools.partial(conn.ensure_connection, interval_start=RECONNECT_INTERVAL_S,
                                                   interval_step=0, interval_max=RECONNECT_INTERVAL_S)
        return super().ensure_connected(conn)


def install(app: Any) -> None:
    """Add the watch to an app's consumer blueprint and reconnect every second (before a worker starts)."""
    app.conf.worker_consumer = f"{Consumer.__module__}:{Consumer.__qualname__}"
    steps = app.steps["consumer"]
    if ConsumerWatch not in steps:
        steps.add(ConsumerWatch)
        # not ready from the failed read on, not only once Celery has cleaned up after it
        on_connection_lost(lambda exc: consumer_state.mark_stopped(
            f"broker connection lost ({type(exc).__name__}); reconnecting"))
