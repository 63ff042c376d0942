"""View decorators of the dashboard: a login, then the API scope the page's action needs."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from controlplane.scopes import READ, user_has_scope

View = Callable[..., Any]


def actor_name(user: Any) -> str:
    """How an operator appears in `operator_action` events and messages."""
    return getattr(user, "get_username", lambda: str(user))() or "operator"


def scope_required(*scopes: str, refusal: str = "You may not act on sessions, agents or jobs.") -> Callable[[View], View]:
    """Login required (redirect), then `read` and every scope named (403), as the API asks
    of a logged-in user for the same action."""

    def decorate(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
            if not user_has_scope(request.user, READ):
                raise PermissionDenied("You may not watch sessions.")
            if not all(user_has_scope(request.user, scope) for scope in scopes):
                raise PermissionDenied(refusal)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


watcher_required = scope_required()
