"""One-time dashboard login links (the `dashboard` command prints one).

The signed token carries the user id and their last_login. Using it moves last_login on
by a conditional update (`UPDATE … WHERE last_login = <the token's stamp>`): of any number
of concurrent requests with one link exactly one updates the row and logs in; the rest
find the stamp gone. A link works for LOGIN_LINK_MAX_AGE seconds at most.
"""
from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model, login
from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

SALT = "workers.login_link"  # its first home; kept so links printed before the move still work
MAX_AGE_SECONDS = 600


def _stamp(user: object) -> str:
    last = getattr(user, "last_login", None)
    return last.isoformat() if last else ""


def login_token(user: object) -> str:
    return signing.dumps({"u": user.pk, "l": _stamp(user)}, salt=SALT, compress=True)  # type: ignore[attr-defined]


def _redeem(user_id: object, stamp: str) -> bool:
    """Spend the link: True for the one request whose update matched the token's stamp."""
    try:
        last_login = datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return False
    unchanged = {"last_login": last_login} if last_login else {"last_login__isnull": True}
    rows = get_user_model().objects.filter(pk=user_id, is_active=True, is_staff=True, **unchanged)
    return rows.update(last_login=timezone.now()) == 1


@never_cache
def login_with_token(request: HttpRequest, token: str) -> HttpResponse:
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE_SECONDS)
    except signing.BadSignature:
        return HttpResponseForbidden("This login link is invalid or has expired.")
    if not isinstance(data, dict) or not isinstance(data.get("l"), str) or not _redeem(data.get("u"), data["l"]):
        return HttpResponseForbidden("This login link has already been used.")
    user = get_user_model().objects.get(pk=data["u"])
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    target = request.GET.get("next", "/")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return HttpResponseRedirect(target)
