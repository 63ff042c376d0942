"""The dispatch rate limit's shared bucket (workers.rate_limit): one EVALSHA per request, which
survives Redis forgetting the script or dropping the connection, and still limits in-process
when Redis cannot answer."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from workers import rate_limit
from workers.rate_limit import retry_after_seconds


@pytest.fixture
def shared() -> redis.Redis:
    """The Redis the buckets live in (scripts/test sets REDIS_URL)."""
    return redis.Redis.from_url(django_settings.REDIS_URL)


def _bucket() -> str:
    return f"test-{uuid.uuid4().hex}"


def test_a_burst_of_the_limit_passes_and_the_next_waits_for_its_token(shared: redis.Redis) -> None:
    bucket = _bucket()
    assert [retry_after_seconds(bucket, per_minute=3) for _ in range(3)] == [None, None, None]
    assert retry_after_seconds(bucket, per_minute=3) == 20  # one token each 20 s, rounded up
    assert shared.exists(f"cp:ratelimit:3:{bucket}")  # kept in Redis, not in this process


def test_the_script_is_loaded_again_after_redis_forgot_it(shared: redis.Redis) -> None:
    bucket = _bucket()
    assert retry_after_seconds(bucket, per_minute=2) is None
    shared.script_flush()
    assert retry_after_seconds(bucket, per_minute=2) is None
    assert retry_after_seconds(bucket, per_minute=2) == 30  # the same bucket: the third is refused
    assert shared.exists(f"cp:ratelimit:2:{bucket}")


def test_a_connection_redis_dropped_is_replaced_and_the_bucket_stays_shared(shared: redis.Redis) -> None:
    bucket = _bucket()
    assert retry_after_seconds(bucket, per_minute=2) is None
    pool = rate_limit._pool(django_settings.REDIS_URL)
    conn = pool.get_connection()
    conn.send_command("CLIENT", "ID")
    own = conn.read_response()
    pool.release(conn)
    assert shared.client_kill_filter(_id=own) == 1  # the pooled connection the next call would take
    assert retry_after_seconds(bucket, per_minute=2) is None
    assert retry_after_seconds(bucket, per_minute=2) == 30
    assert shared.exists(f"cp:ratelimit:2:{bucket}")


def test_without_redis_each_process_limits_on_its_own(settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    rate_limit._pool.cache_clear()
    bucket = _bucket()
    try:
        assert [retry_after_seconds(bucket, per_minute=2) for _ in range(2)] == [None, None]
        assert retry_after_seconds(bucket, per_minute=2) == 30
    finally:
        rate_limit._pool.cache_clear()
    assert "limiting in this process only" in caplog.text
