"""redis-py connections that keep a cancel Python 3.11's asyncio.wait_for drops.

redis-py 8 writes every command inside `asyncio.wait_for(…, socket_timeout)` (its default
socket_timeout is 5 s). On Python 3.11 a task cancelled just as that write completes gets the
write's result instead of its CancelledError: the cancel is gone (CPython gh-86296; 3.12
rewrote wait_for on `asyncio.timeout`). The channel layer's reader, cancelled at a loop's
close while it opened its connection, went on into its blocking pop and ended only when the
pop timed out: every async test's loop teardown, and a process's shutdown, 5 s late.

After a write, a task whose cancel count grew while nothing raised had its cancel dropped:
the connection is closed (the command's reply is still on its way and must not be read as the
next command's) and the cancel raised again.
"""
from __future__ import annotations

import asyncio
import functools
from typing import Any


class _KeepsCancels:
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        task = asyncio.current_task()
        cancels_before = task.cancelling() if task is not None else 0
        await super().send_packed_command(command, check_health)  # type: ignore[misc]
        if task is not None and task.cancelling() > cancels_before:
            await self.disconnect(nowait=True)  # type: ignore[attr-defined]
            raise asyncio.CancelledError


@functools.cache
def keeping_cancels(connection_class: type) -> type:
    """`connection_class` (plain, TLS, Unix socket, Sentinel: whatever the pool chose from its
    address) with the dropped cancel raised again."""
    return type(f"CancelKeeping{connection_class.__name__}", (_KeepsCancels, connection_class), {})
