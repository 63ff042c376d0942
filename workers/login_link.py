"""One-time dashboard login links (the `dashboard` command prints one).

The signed token carries the user id and their last_login; logging in updates
last_login, so a link works once, and for LOGIN_LINK_MAX_AGE seconds at most.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model, login
from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

SALT = "workers.login_link"
MAX_AGE_SECONDS = 600


def _stamp(user: object) -> str:
    last = getattr(user, "last_login", None)
    return last.isoformat() if last else ""


def login_token(user: object) -> str:
    return signing.dumps({"u": user.pk, "l": _stamp(user)}, salt=SALT, compress=True)  # type: ignore[attr-defined]


@never_cache
def login_with_token(request: HttpRequest, token: str) -> HttpResponse:
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE_SECONDS)
    except signing.BadSignature:
        return HttpResponseForbidden("This login link is invalid or has expired.")
    user = get_user_model().objects.filter(pk=data.get("u"), is_active=True, is_staff=True).first()
    if user is None or _stamp(user) != data.get("l"):
        return HttpResponseForbidden("This login link has already been used.")
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    target = request.GET.get("next", "/")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return HttpResponseRedirect(target)
