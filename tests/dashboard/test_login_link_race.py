"""A one-time login link used by many requests at once logs in exactly one of them.

Run on PostgreSQL by the test command (DATABASE_URL); each thread has its own connection.
"""
from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from dashboard.login_link import login_token

pytestmark = pytest.mark.django_db(transaction=True)

CONTENDERS = 8


def use_concurrently(path: str) -> list[int]:
    barrier = threading.Barrier(CONTENDERS)
    statuses: list[int] = []

    def run() -> None:
        try:
            client = Client()
            barrier.wait()
            statuses.append(client.get(path).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(CONTENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


@pytest.mark.parametrize("logged_in_before", [False, True], ids=["first-login", "after-a-login"])
@pytest.mark.parametrize("round_", range(3))
def test_a_link_used_concurrently_logs_in_once(operator: Any, logged_in_before: bool, round_: int) -> None:
    if logged_in_before:
        Client().force_login(operator)
        operator.refresh_from_db()
    statuses = use_concurrently(f"/login/{login_token(operator)}")
    assert sorted(statuses) == [302] + [403] * (CONTENDERS - 1), statuses


def test_the_spent_link_is_refused_afterwards_with_a_clear_message(operator: Any) -> None:
    path = f"/login/{login_token(operator)}"
    assert Client().get(path).status_code == 302
    again = Client().get(path)
    assert again.status_code == 403 and b"already been used" in again.content
