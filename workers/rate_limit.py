"""The per-API-key dispatch rate limit: a GCRA token bucket, one Redis round trip per request.

A key may dispatch DISPATCH_RATE_LIMIT_PER_MINUTE jobs in a burst, then one more every
60 / limit seconds (the bucket refills at the limit's rate). The state is one Redis string
per key (its "theoretical arrival time"), updated by a Lua script that reads Redis' own
clock, so every web process shares one bucket and their clocks may disagree. Without
REDIS_URL (the embedded single-process mode) the same algorithm runs in process memory.
If Redis is unreachable the in-process bucket takes over (logged): each process then
limits on its own rather than failing every dispatch.
"""
from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from functools import lru_cache

import redis
from django.conf import settings

from workers.redis_command import pooled_command

log = logging.getLogger(__name__)

# KEYS[1] bucket; ARGV[1] emission interval (µs), ARGV[2] burst size. Returns 0 when the
# request may pass, else the µs until it would.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - (burst - 1) * interval
if now < allow_at then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
"""


class LocalBuckets:
    """The same GCRA in process memory, for the embedded mode and a Redis outage."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait_us(self, key: str, interval_us: float, burst: int) -> float:
        now = time.monotonic() * 1_000_000
        with self._lock:
            tat = max(self._tat.get(key, now), now)
            allow_at = tat - (burst - 1) * interval_us
            if now < allow_at:
                return allow_at - now
            self._tat[key] = tat + interval_us
            if len(self._tat) > 10_000:  # forget full buckets: a missing entry means a full bucket
                self._tat = {k: v for k, v in self._tat.items() if v > now}
            return 0.0


_local = LocalBuckets()


_GCRA_SHA = hashlib.sha1(_GCRA.encode()).hexdigest()  # the name EVALSHA runs it by, as redis-py's Script has it


@lru_cache(maxsize=4)
def _pool(url: str) -> redis.ConnectionPool:
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0).connection_pool


def _shared_wait_us(url: str, bucket_key: str, interval_us: int, burst: int) -> float:
    """The script's answer, from one EVALSHA on a pooled connection: what redis-py's Script sends,
    without its per-command layers (retry wrapper, response callbacks: ~150 Python calls of each
    POST /api/v1/jobs/). The pool replaces a connection Redis dropped before handing it out; a
    script Redis lost (a restart, SCRIPT FLUSH) is loaded again. Raises RedisError when Redis
    cannot answer (the caller then limits in-process)."""
    pool = _pool(url)
    for _ in range(2):
        try:
            return float(pooled_command(pool, "EVALSHA", _GCRA_SHA, 1, bucket_key, interval_us, burst))
        except redis.exceptions.NoScriptError:
            pooled_command(pool, "SCRIPT", "LOAD", _GCRA)
    raise redis.RedisError("the rate-limit script could not be loaded")


def retry_after_seconds(bucket: str, *, per_minute: int) -> int | None:
    """Take one token from `bucket`; None when granted, else the whole seconds to wait (≥ 1)."""
    interval_us = 60_000_000 / per_minute
    wait_us: float
    if settings.REDIS_URL:
        try:
            # the limit is part of the key: a changed setting starts a fresh bucket
            wait_us = _shared_wait_us(settings.REDIS_URL, f"cp:ratelimit:{per_minute}:{bucket}", int(interval_us), per_minute)
        except redis.RedisError as exc:
            log.warning("rate limit: Redis unreachable (%s); limiting in this process only", exc)
            wait_us = _local.wait_us(bucket, interval_us, per_minute)
    else:
        wait_us = _local.wait_us(bucket, interval_us, per_minute)
    if wait_us <= 0:
        return None
    return max(1, math.ceil(wait_us / 1_000_000))
