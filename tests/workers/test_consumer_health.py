"""When the consumer watch says "consuming": only once the event loop has read its queues.

With the Redis transport Celery's consumer steps only declare; kombu sends BRPOP and
subscribes to the remote-control mailbox in the loop's first tick. Run here on a real
kombu hub with a stand-in consumer, with a tick callback in kombu's place.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from celery.bootsteps import RUN
from kombu.asynchronous import Hub

from workers import consumer_health
from workers.consumer_health import ConsumerState, ConsumerWatch


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch) -> ConsumerState:
    fresh = ConsumerState()
    monkeypatch.setattr(consumer_health, "consumer_state", fresh)
    return fresh


@pytest.fixture
def hub() -> Any:
    hub = Hub()
    yield hub
    hub.close()


def stand_in_consumer(hub: Any) -> Any:
    queue = SimpleNamespace(name="w1@test.dq2")
    return SimpleNamespace(hub=hub, connection=object(), blueprint=SimpleNamespace(state=RUN),
                           task_consumer=SimpleNamespace(queues=[queue]))


def test_consuming_is_said_only_after_the_loops_first_tick(state: ConsumerState, hub: Any) -> None:
    c = stand_in_consumer(hub)
    watch = ConsumerWatch(c)
    subscribed_when_consuming: list[bool] = []
    ticks: list[int] = []
    hub.on_tick.add(lambda: ticks.append(1))  # where kombu sends BRPOP / PSUBSCRIBE
    state.on_change(lambda: subscribed_when_consuming.append(bool(ticks)))

    watch.start(c)
    assert not state.health().ok  # the steps have started; nothing reads the queues yet
    loop = hub.create_loop()
    next(loop)
    assert ticks and not state.health().ok
    next(loop)
    assert state.health().ok and state.queues == ("w1@test.dq2",)
    assert subscribed_when_consuming == [True]


def test_a_stop_before_the_first_tick_wins_over_the_start(state: ConsumerState, hub: Any) -> None:
    c = stand_in_consumer(hub)
    watch = ConsumerWatch(c)
    watch.start(c)
    state.mark_stopped("broker connection lost (ConnectionError); reconnecting")  # the first read failed
    loop = hub.create_loop()
    for _ in range(3):
        next(loop)
    health = state.health()
    assert not health.ok and "broker connection lost" in health.reason


def test_without_an_event_loop_the_consumer_consumes_as_the_steps_start(state: ConsumerState) -> None:
    c = stand_in_consumer(None)
    watch = ConsumerWatch(c)
    watch.start(c)
    assert state.health().ok


def test_the_consumer_retries_a_lost_broker_every_second() -> None:
    from controlplane.celery import app

    attempts: list[dict[str, Any]] = []
    conn = SimpleNamespace(ensure_connection=lambda *args, **kwargs: attempts.append(kwargs) or conn)
    consumer = consumer_health.Consumer.__new__(consumer_health.Consumer)  # no worker around it
    consumer.app, consumer.first_connection_attempt, consumer.broker_connection_retry_attempt = app, False, 0

    assert consumer.ensure_connected(conn) is conn
    assert attempts[0]["interval_start"] == attempts[0]["interval_max"] == consumer_health.RECONNECT_INTERVAL_S == 1.0
    assert attempts[0]["interval_step"] == 0
    assert app.conf.worker_consumer == "workers.consumer_health:Consumer"  # installed with the watch
