"""Wrong passwords are throttled per username and client address (django-axes), on the
dashboard login and the admin login alike, with a clear message."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import time_machine
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "operator-pass-123"
DEFAULT_LIMIT = 5  # LOGIN_FAILURE_LIMIT's default


def attempt(path: str, username: str, password: str, address: str = "10.0.0.1") -> Any:
    return Client().post(path, {"username": username, "password": password, "next": "/"}, REMOTE_ADDR=address)


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_forty_wrong_passwords_lock_the_username_for_that_address(operator: Any, path: str) -> None:
    answers = [attempt(path, "operator", f"wrong-{i}").status_code for i in range(40)]
    limit = DEFAULT_LIMIT
    assert answers[: limit - 1] == [200] * (limit - 1)  # the form again, "didn't match"
    assert set(answers[limit:]) == {429}

    locked = attempt(path, "operator", PASSWORD)  # the right password no longer helps
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "Too many failed logins" in text and "operator" in text and "Try again in" in text
    assert "_auth_user_id" not in locked.client.session


def test_the_lock_is_per_username_and_address(operator: Any, django_user_model: Any, settings: Any) -> None:
    django_user_model.objects.create_user(username="other", password="other-pass-1234", is_staff=True)
    for i in range(settings.AXES_FAILURE_LIMIT):
        attempt("/accounts/login/", "operator", f"wrong-{i}")
    assert attempt("/accounts/login/", "operator", PASSWORD).status_code == 429
    assert attempt("/accounts/login/", "operator", PASSWORD, address="10.0.0.2").status_code == 302
    assert attempt("/accounts/login/", "other", "other-pass-1234").status_code == 302


def test_a_few_mistakes_then_the_right_password_log_in_and_reset_the_count(operator: Any, settings: Any) -> None:
    for i in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt("/accounts/login/", "operator", f"wrong-{i}").status_code == 200
    assert attempt("/accounts/login/", "operator", PASSWORD).status_code == 302
    for i in range(settings.AXES_FAILURE_LIMIT - 1):  # a fresh allowance after the success
        assert attempt("/accounts/login/", "operator", f"again-{i}").status_code == 200
    assert attempt("/accounts/login/", "operator", PASSWORD).status_code == 302


def test_the_lock_ends_after_the_cool_off(operator: Any, settings: Any) -> None:
    for i in range(settings.AXES_FAILURE_LIMIT):
        attempt("/accounts/login/", "operator", f"wrong-{i}")
    assert attempt("/accounts/login/", "operator", PASSWORD).status_code == 429
    with time_machine.travel(datetime.now(timezone.utc) + settings.AXES_COOLOFF_TIME + timedelta(minutes=1)):
        assert attempt("/accounts/login/", "operator", PASSWORD).status_code == 302
