"""One Redis command on a pooled connection, without redis-py's per-command layers.

`Redis.execute_command` wraps each command in a retry helper, response callbacks and
observability hooks: 100-150 Python calls, paid twice by every POST /api/v1/jobs/ (the rate
limit's script, the job's push). Here the command is sent and its reply read on a connection
of the pool; the pool replaces a connection Redis dropped before handing it out.
"""
from __future__ import annotations

from typing import Any

import redis


def pooled_command(pool: redis.ConnectionPool, *args: Any) -> Any:
    """The reply to one command; raises what redis-py raises (RedisError and its kinds)."""
    conn = pool.get_connection()
    try:
        conn.send_command(*args)
        return conn.read_response()
    except (redis.ConnectionError, redis.TimeoutError):
        conn.disconnect()  # a reply may still be on its way: never reuse it
        raise
    finally:
        pool.release(conn)
