"""How django-axes names a login attempt in the log (AXES_CLIENT_STR_CALLABLE).

The username and client address are what an operator needs to read a lock-out; the path
of a one-time login link carries its token, which stays out of the log.
"""
from __future__ import annotations

from typing import Any

LOGIN_LINK_PREFIX = "/login/"


def client_str(username: str | None, ip_address: str | None, user_agent: str | None, path_info: Any, request: Any) -> str:
    path = path_info[0] if isinstance(path_info, (tuple, list)) else (path_info or "")
    if str(path).startswith(LOGIN_LINK_PREFIX):
        path = LOGIN_LINK_PREFIX + "<token>"
    return f"{{username: {username or ''!r}, ip_address: {ip_address or ''!r}, path: {path!r}}}"
