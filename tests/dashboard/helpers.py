"""Small helpers shared by the dashboard tests."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import connection

T = TypeVar("T")


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ORM code from an async test on a fresh thread that closes its connection after.

    (Django's own `sync_to_async` keeps a thread, and its connection, alive past the test,
    which keeps PostgreSQL from dropping the test database.)
    """

    def call() -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    return await asyncio.to_thread(call)
