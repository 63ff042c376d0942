"""Who may watch and who may act on sessions: one rule for the dashboard, the consumers and the API.

A user's right is the API scope's: watching needs what `read` needs, acting needs what
`sessions:control` needs (controlplane.scopes maps each scope to Django permissions; a
superuser holds them all). `is_staff` only opens the admin, as for the API.
"""
from __future__ import annotations

from typing import Any

from controlplane.models import ApiKey
from controlplane.scopes import READ, SESSIONS_CONTROL, user_has_scope


def user_can_watch(user: Any) -> bool:
    return user_has_scope(user, READ)


def user_can_control(user: Any) -> bool:
    return user_can_watch(user) and user_has_scope(user, SESSIONS_CONTROL)


def key_can_watch(key: ApiKey | None) -> bool:
    return key is not None and key.has_scope(READ)


def key_can_control(key: ApiKey | None) -> bool:
    return key is not None and key.has_scope(SESSIONS_CONTROL)
