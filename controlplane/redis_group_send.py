"""Many group sends on channels_redis in two round trips per Redis host, not four per group.

channels_redis (4.3) has no multi-group send: `group_send` prunes the group, reads its
channels, prunes each channel and runs its Lua script, one awaited command after another,
per group. The event sink's writer hands over one message per live session each cycle,
so with hundreds of sessions that was the broadcaster's time and most of Redis's. Here one
pipeline prunes and reads every group of a round, and one pipeline prunes every channel
and runs the same Lua script once for all of them, on the layer's own connections, keys,
serialisation, capacity and expiry (its helpers, so messages look exactly as its own
`group_send` makes them and its `receive` reads them unchanged).

Order: the messages of one group go out in hand-over order, each round a group's next one
(the script scores a channel's messages by send time; two of one group in one script call
would share a score and pop in byte order).
"""
from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)

Message = dict[str, Any]

# channels_redis's group_send script, unchanged: add to each channel unless it is at capacity
GROUP_SEND_LUA = """
    local over_capacity = 0
    local current_time = ARGV[#ARGV - 1]
    local expiry = ARGV[#ARGV]
    for i=1,#KEYS do
        if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
            redis.call('ZADD', KEYS[i], current_time, ARGV[i])
            redis.call('EXPIRE', KEYS[i], expiry)
        else
            over_capacity = over_capacity + 1
        end
    end
    return over_capacity
"""


def supports_many(layer: Any) -> bool:
    """A channels_redis core layer, whose helpers this module uses (not the pubsub layer)."""
    return all(hasattr(layer, name) for name in ("_map_channel_keys_to_connection", "_group_key", "consistent_hash",
                                                  "connection", "group_expiry", "expiry"))


async def group_send_many(layer: Any, by_group: dict[str, list[Message]]) -> None:
    """Send each group its messages, in order; every group of a round at once."""
    rounds = max((len(messages) for messages in by_group.values()), default=0)
    for k in range(rounds):
        await _send_round(layer, {group: messages[k] for group, messages in by_group.items() if len(messages) > k})


async def _send_round(layer: Any, batch: dict[str, Message]) -> None:
    # 1. every group's live channels, one pipeline per host holding group keys
    by_host: dict[int, list[str]] = {}
    for group in batch:
        by_host.setdefault(layer.consistent_hash(group), []).append(group)
    now = int(time.time())
    targets: dict[int, tuple[list[bytes | str], list[bytes], list[int]]] = {}  # host → keys, messages, capacities
    for host, groups in by_host.items():
        pipe = layer.connection(host).pipeline(transaction=False)
        for group in groups:
            key = layer._group_key(group)
            pipe.zremrangebyscore(key, min=0, max=now - layer.group_expiry)
            pipe.zrange(key, 0, -1)
        replies = await pipe.execute()
        for group, members in zip(groups, replies[1::2]):
            channels = [member.decode("utf8") for member in members]
            per_host, messages, capacities = layer._map_channel_keys_to_connection(channels, batch[group])
            for channel_host, channel_keys in per_host.items():
                keys, payloads, caps = targets.setdefault(channel_host, ([], [], []))
                for channel_key in channel_keys:
                    keys.append(channel_key)
                    payloads.append(messages[channel_key])
                    caps.append(capacities[channel_key])
    # 2. per host holding channels: drop expired messages, then the script for all of them
    for host, (keys, payloads, caps) in targets.items():
        pipe = layer.connection(host).pipeline(transaction=False)
        expired_before = int(time.time()) - int(layer.expiry)
        for key in dict.fromkeys(keys):
            pipe.zremrangebyscore(key, min=0, max=expired_before)
        pipe.eval(GROUP_SEND_LUA, len(keys), *keys, *payloads, *caps, time.time(), layer.expiry)
        over_capacity = (await pipe.execute())[-1]
        if over_capacity:
            log.info("%s of %s channel sends over capacity", over_capacity, len(keys))
