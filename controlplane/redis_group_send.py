"""Many group sends on channels_redis in a few round trips per Redis host, not four per group.

channels_redis (4.3) has no multi-group send: `group_send` prunes the group, reads its
channels, prunes each channel and runs its Lua script, one awaited command after another,
per group. The event sink's writer hands over one message per live session each cycle,
so with hundreds of sessions that was the broadcaster's time and most of Redis's. Here one
pipeline prunes and reads every group of the hand-over, and per round (each group's next
message) one pipeline prunes every channel and runs the same Lua script once for all of
them; a group nobody is in costs its read only, on the layer's own connections, keys,
serialisation, capacity and expiry, so a message arrives exactly as its own `group_send`
delivers it. On `controlplane.channel_layer.BatchingRedisChannelLayer` a round's messages
to one receiving process are one entry (see there why).

Order: the messages of one group go out in hand-over order, each round a group's next one
(the script scores a channel's messages by send time; two of one group in one script call
would share a score and pop in byte order).
"""
from __future__ import annotations

import logging
import time
from typing import Any

from controlplane.channel_layer import BATCH_KEY

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
    return all(hasattr(layer, name) for name in ("_group_key", "consistent_hash", "connection", "non_local_name",
                                                  "get_capacity", "serialize", "prefix", "group_expiry", "expiry"))


async def group_send_many(layer: Any, by_group: dict[str, list[Message]]) -> None:
    """Send each group its messages, in order; every group of a round at once.

    The groups' channels are read once for all rounds (a broadcaster hand-over is sent at
    once: later rounds are not later sends), and groups nobody is in take no round at all."""
    channels = await _channels_of(layer, list(by_group))
    watched = {group: messages for group, messages in by_group.items() if channels[group]}
    rounds = max((len(messages) for messages in watched.values()), default=0)
    for k in range(rounds):
        await _deliver_round(layer, {group: messages[k] for group, messages in watched.items() if len(messages) > k},
                             channels)


class _Entries:
    """What one round puts in each channel key of one Redis host: per key, the (channels,
    message) of every group with channels there, and the key's capacity."""

    def __init__(self) -> None:
        self.by_key: dict[str, list[tuple[list[str], Message]]] = {}
        self.capacity: dict[str, int] = {}

    def add(self, key: str, channels: list[str], message: Message, capacity: int) -> None:
        self.by_key.setdefault(key, []).append((channels, message))
        self.capacity.setdefault(key, capacity)


async def _group_channels(layer: Any, groups: list[str], host: int) -> list[list[str]]:
    """Each group's live channels (expired memberships dropped first), in one pipeline."""
    now = int(time.time())
    pipe = layer.connection(host).pipeline(transaction=False)
    for group in groups:
        key = layer._group_key(group)
        pipe.zremrangebyscore(key, min=0, max=now - layer.group_expiry)
        pipe.zrange(key, 0, -1)
    replies = await pipe.execute()
    return [[member.decode("utf8") for member in members] for members in replies[1::2]]


def _payloads(layer: Any, entries: _Entries) -> tuple[list[str], list[bytes], list[int]]:
    """Keys, serialised entries and capacities for the script. A process-local key (`…!`,
    one per receiving process) gets the round's messages packed in ONE entry when the layer
    receives batches (`controlplane.channel_layer`); else each message is its own entry, as
    channels_redis stores it."""
    keys: list[str] = []
    payloads: list[bytes] = []
    caps: list[int] = []
    packs = getattr(layer, "receives_batches", False)
    for key, items in entries.by_key.items():
        if packs and len(items) > 1 and key.endswith("!"):
            (channels, first), rest = items[0], items[1:]
            messages = [{**first, "__asgi_channel__": channels, BATCH_KEY: [[c, m] for c, m in rest]}]
        else:
            messages = [{**message, "__asgi_channel__": channels} for channels, message in items]
        for message in messages:
            keys.append(key)
            payloads.append(layer.serialize(message))
            caps.append(entries.capacity[key])
    return keys, payloads, caps


async def _channels_of(layer: Any, groups: list[str]) -> dict[str, list[str]]:
    """1. every group's channels, one pipeline per host holding group keys."""
    by_host: dict[int, list[str]] = {}
    for group in groups:
        by_host.setdefault(layer.consistent_hash(group), []).append(group)
    channels: dict[str, list[str]] = {}
    for host, host_groups in by_host.items():
        channels.update(zip(host_groups, await _group_channels(layer, host_groups, host)))
    return channels


async def _deliver_round(layer: Any, batch: dict[str, Message], channels_of: dict[str, list[str]]) -> None:
    targets: dict[int, _Entries] = {}  # host holding the channel keys → what goes there
    for group, message in batch.items():
        per_key: dict[str, list[str]] = {}  # a group's channels in one process share its key
        for channel in channels_of[group]:
            per_key.setdefault(layer.prefix + layer.non_local_name(channel), []).append(channel)
        for key, key_channels in per_key.items():
            channel_host = layer.consistent_hash(layer.non_local_name(key_channels[0]))
            targets.setdefault(channel_host, _Entries()).add(key, key_channels, message,
                                                             layer.get_capacity(key_channels[0]))
    # 2. per host holding channel keys: drop expired messages, then the script for all entries
    for host, entries in targets.items():
        keys, payloads, caps = _payloads(layer, entries)
        pipe = layer.connection(host).pipeline(transaction=False)
        expired_before = int(time.time()) - int(layer.expiry)
        for key in entries.by_key:
            pipe.zremrangebyscore(key, min=0, max=expired_before)
        pipe.eval(GROUP_SEND_LUA, len(keys), *keys, *payloads, *caps, time.time(), layer.expiry)
        over_capacity = (await pipe.execute())[-1]
        if over_capacity:
            log.info("%s of %s channel entries over capacity", over_capacity, len(keys))
