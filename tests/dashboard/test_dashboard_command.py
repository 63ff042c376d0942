"""`manage.py dashboard` prints the dashboard's URL and a one-time login link."""
from __future__ import annotations

import io
from typing import Any

from django.core.management import call_command


def test_dashboard_prints_a_one_time_login_link(operator: Any, client: Any) -> None:
    out = io.StringIO()
    call_command("dashboard", "--url", "http://cp.example", stdout=out, stderr=out)
    link = out.getvalue().split("): ")[-1].strip()
    assert link.startswith("http://cp.example/login/")
    path = link.removeprefix("http://cp.example")
    first = client.get(path)
    assert first.status_code == 302
    client.logout()
    assert client.get(path).status_code == 403  # used once: refused
