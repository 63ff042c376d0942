"""Waiting in tests: every poll loop goes through `wait_for` (or `wait_for_async` on an event
loop), so none can hang past its deadline and each says what it was waiting for when it gives up."""
from __future__ import annotations

import asyncio
import inspect
import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import Any


Description = str | Callable[[], str]  # a callable is asked at the deadline, to say what it saw


def _timed_out(timeout: float, what: Description) -> AssertionError:
    return AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")


def wait_for(predicate: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02,
             what: Description = "condition") -> Any:
    """Call `predicate` until it returns something truthy, and return that; AssertionError
    after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what)
        time.sleep(interval)


async def wait_for_async(predicate: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.01,
                         what: Description = "condition") -> Any:
    """`wait_for` on an event loop: sleeps without blocking it; `predicate` may be a coroutine
    function."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what)
        await asyncio.sleep(interval)


def wait_until_serving(url: str, proc: subprocess.Popen[Any], *, timeout: float, output: Callable[[], str],
                       interval: float = 0.2) -> None:
    """Until a GET of `url` answers 200; fails at once if the server process `proc` exits,
    with its `output()`."""

    def serving() -> bool:
        assert proc.poll() is None, f"the server exited:\n{output()}"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:  # refused while it starts, or an HTTP error status
            return False

    wait_for(serving, timeout=timeout, interval=interval, what=lambda: f"{url} to answer:\n{output()}")
