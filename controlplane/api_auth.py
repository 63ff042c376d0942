"""Bearer API-key authentication and scope permissions for the REST API."""
from __future__ import annotations

from typing import Any

from rest_framework import HTTP_HEADER_ENCODING, authentication, exceptions, permissions

from controlplane.models import ApiKey, AuthCompanion
from controlplane.scopes import READ, user_has_scope


class ApiKeyUser:
    """The request user for an API-key request: authenticated, no Django permissions."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.pk = None
        self.username = f"apikey:{api_key.name}"

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[ApiKeyUser, ApiKey] | None:
        header = _authorization_header(request)
        if not header:
            return None
        parts = header.split()
        if not parts or parts[0] != self.keyword:  # e.g. a header of whitespace only: not ours
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <api key>'.")
        key = ApiKey.authenticate(parts[1], _companion_of(request))
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        return ApiKeyUser(key), key

    def authenticate_header(self, request: Any) -> str:
        return self.keyword


def _authorization_header(request: Any) -> str:
    """DRF's `get_authorization_header(request).decode("latin-1")`, read from META: DRF reads
    `request.headers`, whose first use turns every META entry into a header name (~65 Python
    calls of each API request); HTTP_AUTHORIZATION is the one entry it would find."""
    value = request.META.get("HTTP_AUTHORIZATION", b"")
    if isinstance(value, str):  # as DRF: the test client may give text
        value = value.encode(HTTP_HEADER_ENCODING)
    return value.decode("latin-1")


def _companion_of(request: Any) -> AuthCompanion | None:
    """The read the request's view asks to run with the key lookup (`auth_companion`), if any."""
    view = (getattr(request, "parser_context", None) or {}).get("view")
    make = getattr(view, "auth_companion", None)
    return make(request) if make is not None else None


def request_has_scope(request: Any, scope: str) -> bool:
    """API keys need the scope; logged-in users (the dashboard) need its Django permissions."""
    if isinstance(request.auth, ApiKey):
        return request.auth.has_scope(scope)
    return user_has_scope(getattr(request, "user", None), scope)


def actor_name(request: Any) -> str:
    """Who did it, for audit fields and operator_action events."""
    if isinstance(request.auth, ApiKey):
        return f"apikey:{request.auth.name}"
    user = getattr(request, "user", None)
    return getattr(user, "username", "") or "anonymous"


class HasScope(permissions.BasePermission):
    """Reads need `read`; anything else needs the view's `write_scope`."""

    message = "This API key lacks the scope this action needs."

    def has_permission(self, request: Any, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            scope = getattr(view, "read_scope", READ)
        else:
            scope = getattr(view, "write_scope", None)
            if scope is None:
                return False
        if not request_has_scope(request, scope):
            who = "API key" if isinstance(request.auth, ApiKey) else "user"
            self.message = f"This {who} lacks the '{scope}' scope."
            return False
        return True
