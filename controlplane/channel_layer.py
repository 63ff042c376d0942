"""The Redis channel layer, able to receive many messages in one Redis entry.

channels_redis delivers to a process's own channels (`specific.<process>!<id>`: every
WebSocket consumer of a web process) through ONE Redis key per process, and receives from
it one message at a time, strictly in turn: a cleanup script, a BZPOPMIN, a backup ZADD and
its cleaner, four round trips per message. With hundreds of watched sessions that loop was
the web process's ceiling, and the queue in front of it what made events late on the
dashboard (bench/capacity.py: event → WebSocket p99 1.6 s at 100 calls).

`controlplane.redis_group_send` therefore packs what one round sends to one process key
into one entry: the first message as channels_redis stores it (its channels in
`__asgi_channel__`), the others under BATCH_KEY as `[channels, message]` pairs. Receiving
it here hands every message to its channels' buffers at once, so one pop serves the lot.
Anything sent the usual way (a single message) is received exactly as before. Senders pack
only for a layer of this class (`receives_batches`): web and worker processes share the
setting.
"""
from __future__ import annotations

import functools
from typing import Any

import redis.utils
from channels_redis.core import RedisChannelLayer

BATCH_KEY = "__batch__"

# redis-py looks its own version up in the installed package metadata (importlib.metadata: a
# directory scan and an e-mail header parse, about a millisecond) for every connection it
# opens; a worker's session loop opening connections for hundreds of calls paid it over and
# over (bench/capacity.py: 2.7 % of the worker's GIL at 400 calls). The version does not
# change while the process runs.
if not hasattr(redis.utils.get_lib_version, "cache_info"):
    redis.utils.get_lib_version = functools.lru_cache(maxsize=1)(redis.utils.get_lib_version)


class BatchingRedisChannelLayer(RedisChannelLayer):
    receives_batches = True

    async def receive_single(self, channel: str) -> tuple[Any, dict[str, Any]]:
        message_channel, message = await super().receive_single(channel)
        more = message.pop(BATCH_KEY, None) if isinstance(message, dict) else None
        # No await from here to the caller's own buffering of the first message: the others
        # are in their buffers by then, as if received in one go (they are other groups'
        # messages: no order between them and the first is promised).
        for channels, item in more or ():
            for name in channels:
                self.receive_buffer[name].put_nowait(item)
        return message_channel, message
