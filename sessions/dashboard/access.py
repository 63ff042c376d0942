"""Who may watch and who may act on sessions: one place for the dashboard and consumers."""
from __future__ import annotations

from typing import Any

from controlplane.models import ApiKey
from controlplane.scopes import READ, SESSIONS_CONTROL

WATCH_PERMISSION = "agent_sessions.view_agentsession"
CONTROL_PERMISSION = "agent_sessions.change_agentsession"


def user_can_watch(user: Any) -> bool:
    """Staff see everything; other users need the session view permission."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return bool(user.is_staff or user.has_perm(WATCH_PERMISSION))


def user_can_control(user: Any) -> bool:
    if not user_can_watch(user):
        return False
    return bool(user.is_staff or user.has_perm(CONTROL_PERMISSION))


def key_can_watch(key: ApiKey | None) -> bool:
    return key is not None and key.has_scope(READ)


def key_can_control(key: ApiKey | None) -> bool:
    return key is not None and key.has_scope(SESSIONS_CONTROL)


def actor_name(user: Any) -> str:
    """How an operator appears in `operator_action` events."""
    return getattr(user, "get_username", lambda: str(user))() or "operator"
