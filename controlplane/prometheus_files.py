"""Names for prometheus_client's multiprocess files that never collide across containers.

prometheus_client names each process's files `<type>_<pid>.db` in PROMETHEUS_MULTIPROC_DIR.
In docker compose every container's main process is PID 1: two containers sharing the
directory would write one file, each overwriting the other's values (4,000 increments in
two processes summed to 2,357). `install()` swaps in the library's own value class with a
process identifier of host name (the container id under Docker), PID and a random token
drawn at start-up and after every fork: unique even where host names repeat.

It must run before the first metric is created, so `controlplane/__init__.py` calls it.
The identifier holds no `_` (the collector splits file names on it).
"""
from __future__ import annotations

import os
import re
import secrets
import socket

from prometheus_client import values

_token = secrets.token_hex(4)


def _new_token_after_fork() -> None:
    global _token
    _token = secrets.token_hex(4)


os.register_at_fork(after_in_child=_new_token_after_fork)


def process_identifier() -> str:
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:63] or "host"
    return f"{host}-{os.getpid()}-{_token}"


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def install() -> bool:
    """Use collision-free file names when multiprocess mode is on; True if it is."""
    if multiprocess_dir() is None:
        return False
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)
    return True
