"""The Redis channel layer: one reader per process, and many messages in one Redis entry.

channels_redis delivers to a process's own channels (`specific.<process>!<id>`: every
WebSocket consumer of a web process) through ONE Redis key per process. Its `receive` has
every waiting consumer race for a lock (two tasks and an `asyncio.wait` per call, a fresh
buffer queue per message), and the winner pops for everyone. With hundreds of watched
sessions that dance was half of the web process's time (bench/capacity.py profiles:
`RedisChannelLayer.receive` 44–47 % of its GIL, `Queue.__init__` 8.6 % self).

Here `receive` on a process-local channel only waits on the channel's buffer; ONE reader
task per process (started by the first receive, gone a pop timeout after the last receiver
left) pops the process key, every entry waiting there at once, and fills the buffers.
Redis keys, message encoding, the backup queue that survives a cancelled pop, capacity (a
full buffer drops its oldest message) and expiry are channels_redis's own. A buffer lives while its channel is received from; a
consumer that went away (its receive cancelled) leaves no buffer behind, and one a late
message re-created is dropped after the layer's `expiry` with no receiver (its message
would have expired in Redis by then too). A Redis error reaches every waiting receiver,
as channels_redis raises it into the one that held the lock. Other channels (no `!`) are
received exactly as channels_redis does.

`controlplane.redis_group_send` also packs what one round sends to one process key into
one entry: the first message as channels_redis stores it (its channels in
`__asgi_channel__`), the others under BATCH_KEY as `[channels, message]` pairs; the reader
hands every message to its channels' buffers at once. Anything sent the usual way (a single
message) is received exactly as before. Senders pack only for a layer of this class
(`receives_batches`): web and worker processes share the setting.
"""
from __future__ import annotations

import asyncio
import collections
import functools
import logging
from typing import Any

import redis.utils
from channels_redis.core import RedisChannelLayer

from controlplane.redis_cancel import keeping_cancels

log = logging.getLogger(__name__)

BATCH_KEY = "__batch__"
READER_RETRY_S = 0.1  # after a Redis error, before the reader pops again for those still waiting
POP_MANY = 100  # entries the reader takes off the process key per blocking pop, at most
# Connections per pool unless a host's config sets its own. A receive on a channel that is not
# process-local (a session's control channel in the worker) holds a connection in its blocking
# pop; redis-py 6+ caps a pool at 100 by default (channels_redis expects no cap), so the 101st
# call's control channel failed with MaxConnectionsError ("control channel unavailable", 80
# times in a 200-call bench/capacity.py round). Redis's own default maxclients is the bound.
MAX_CONNECTIONS = 10_000

# after the blocking pop: the next entries (oldest first) off the key and onto its backup queue,
# atomically, as channels_redis's pop does for one
POP_MORE_LUA = """
    local items = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
    for i = 1, #items, 2 do
        redis.call('ZADD', KEYS[2], items[i + 1], items[i])
    end
    return items
"""

# redis-py looks its own version up in the installed package metadata (importlib.metadata: a
# directory scan and an e-mail header parse, about a millisecond) for every connection it
# opens; a worker's session loop opening connections for hundreds of calls paid it over and
# over (bench/capacity.py: 2.7 % of the worker's GIL at 400 calls). The version does not
# change while the process runs.
if not hasattr(redis.utils.get_lib_version, "cache_info"):
    redis.utils.get_lib_version = functools.lru_cache(maxsize=1)(redis.utils.get_lib_version)


class _ReaderFailed:
    """Put in a waiting receiver's buffer: the reader's pop failed with `error`."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class BatchingRedisChannelLayer(RedisChannelLayer):
    receives_batches = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for host in self.hosts:  # decoded by channels_redis: one kwargs dict per host, for its pool
            host.setdefault("max_connections", MAX_CONNECTIONS)
        self._reader: asyncio.Task[None] | None = None
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        self._receivers: collections.Counter[str] = collections.Counter()  # channel → receive() calls waiting
        self._idle_since: dict[str, float] = {}  # buffered channel nobody receives from → since (loop time)
        self._next_sweep = 0.0

    def create_pool(self, index: int) -> Any:
        # a cancelled reader must end at once, not after its next blocking pop (see the module)
        pool = super().create_pool(index)
        pool.connection_class = keeping_cancels(pool.connection_class)
        return pool

    # -- receiving on a process-local channel ------------------------------------------------------
    async def receive(self, channel: str) -> dict[str, Any]:
        if "!" not in channel:
            return await super().receive(channel)
        assert self.require_valid_channel_name(channel)
        real_channel = self.non_local_name(channel)
        assert real_channel.endswith(self.client_prefix + "!"), "Wrong client prefix"
        reader, loop = self._reader, asyncio.get_running_loop()
        if self._receivers and reader is not None and not reader.done() and self._reader_loop is not loop:
            raise RuntimeError("Two event loops are trying to receive() on one channel layer at once!")
        buffer = self.receive_buffer[channel]
        self._receivers[channel] += 1
        self._idle_since.pop(channel, None)
        try:
            if buffer.empty():
                self._ensure_reader(real_channel)
            message = await buffer.get()
        except asyncio.CancelledError:
            if self._receivers[channel] == 1 and buffer.empty():
                self.receive_buffer.pop(channel, None)  # the consumer went away: keep no buffer for it
            raise
        finally:
            self._receivers[channel] -= 1
            if self._receivers[channel] <= 0:
                del self._receivers[channel]
        if isinstance(message, _ReaderFailed):
            raise message.error
        return message

    def _ensure_reader(self, real_channel: str) -> None:
        loop = asyncio.get_running_loop()
        reader = self._reader
        if reader is not None and not reader.done():
            if self._reader_loop is loop:
                return
            other = self._reader_loop
            if other is not None and other.is_running():
                # a reader still popping on a loop whose receivers all left (within a pop
                # timeout): it stops there, this loop's reader takes over
                other.call_soon_threadsafe(reader.cancel)
        self._reader_loop = loop
        self._reader = loop.create_task(self._read(real_channel), name="channel-layer-reader")

    async def _read(self, real_channel: str) -> None:
        me = asyncio.current_task()
        loop = asyncio.get_running_loop()
        try:
            while self._receivers and self._reader is me:
                try:
                    popped = await self._pop(real_channel)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every waiting receiver hears of it
                    for channel in list(self._receivers):
                        self.receive_buffer[channel].put_nowait(_ReaderFailed(exc))
                    await asyncio.sleep(READER_RETRY_S)
                    continue
                for message_channel, message in popped:  # in send order, no await between
                    self._deliver(message_channel, message)
                self._sweep(loop.time())
        finally:
            if self._reader is me:
                self._reader = None

    def _deliver(self, message_channel: Any, message: dict[str, Any]) -> None:
        # no await from the pop to here: a round's messages are all buffered at once
        more = message.pop(BATCH_KEY, None) if isinstance(message, dict) else None
        for name in message_channel if isinstance(message_channel, list) else [message_channel]:
            self.receive_buffer[name].put_nowait(message)
        for channels, item in more or ():
            for name in channels:
                self.receive_buffer[name].put_nowait(item)

    async def _pop(self, real_channel: str) -> list[tuple[Any, dict[str, Any]]]:
        """channels_redis's `receive_single` for the process key, for every entry waiting
        there (up to POP_MANY) and with one blocking pop: [] when it timed out (so the reader
        can see whether anyone still waits). One entry per four round trips was the web
        process's ceiling: in a burst its key held hundreds of entries, seconds of lateness
        (bench/capacity.py, 200 calls). The others move to the same backup queue as the
        first, in one script, so a reader that dies mid-way loses none of them."""
        index = self.consistent_hash(real_channel)
        channel_key = self.prefix + real_channel
        await self.receive_clean_locks.acquire(channel_key)
        try:
            content = await self._brpop_with_clean(index, channel_key, timeout=self.brpop_timeout)
            if content is None:
                self.receive_clean_locks.release(channel_key)
                return []
            more = await self.connection(index).eval(POP_MORE_LUA, 2, channel_key,
                                                     self._backup_channel_name(channel_key), POP_MANY - 1)
            contents = [content, *more[0::2]]
            cleaner = asyncio.ensure_future(self._clean_backup(index, channel_key, len(contents)))
            self.receive_cleaners.append(cleaner)

            def _cleanup_done(cleaner: asyncio.Future[Any]) -> None:
                self.receive_cleaners.remove(cleaner)
                self.receive_clean_locks.release(channel_key)

            cleaner.add_done_callback(_cleanup_done)
        except BaseException:
            self.receive_clean_locks.release(channel_key)
            raise
        popped = []
        for content in contents:
            message = self.deserialize(content)
            popped.append((message.pop("__asgi_channel__", real_channel), message))
        return popped

    async def _clean_backup(self, index: int, channel_key: str, count: int) -> None:
        """The popped entries are buffered: off the backup queue (its oldest `count`)."""
        await self.connection(index).zpopmin(self._backup_channel_name(channel_key), count)

    def _sweep(self, now: float) -> None:
        """Drop the buffers of channels nobody has received from for `expiry` seconds."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + min(float(self.expiry), 10.0)
        for channel in list(self.receive_buffer):
            if self._receivers.get(channel):
                continue
            since = self._idle_since.setdefault(channel, now)
            if now - since >= self.expiry:
                del self.receive_buffer[channel]
                del self._idle_since[channel]
        for channel in [c for c in self._idle_since if c not in self.receive_buffer]:
            del self._idle_since[channel]

    # -- a round packed by the sender, received through channels_redis's own receive ----------------
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

    async def close_pools(self) -> None:
        reader = self._reader
        if reader is not None and not reader.done() and self._reader_loop is asyncio.get_running_loop():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await super().close_pools()
