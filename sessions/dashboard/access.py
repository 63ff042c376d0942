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


def watcher_required(view: Any) -> Any:
    """Login required (redirect), then the watch permission (403)."""
    from functools import wraps

    from django.contrib.auth.decorators import login_required
    from django.core.exceptions import PermissionDenied

    @login_required
    @wraps(view)
    def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
        if not user_can_watch(request.user):
            raise PermissionDenied("You may not watch sessions.")
        return view(request, *args, **kwargs)

    return wrapper


def controller_required(view: Any) -> Any:
    """Like `watcher_required`, for views that change something."""
    from functools import wraps

    from django.core.exceptions import PermissionDenied

    @watcher_required
    @wraps(view)
    def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
        if not user_can_control(request.user):
            raise PermissionDenied("You may not act on sessions, agents or jobs.")
        return view(request, *args, **kwargs)

    return wrapper
