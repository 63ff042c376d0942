"""`manage.py tools list|validate|test`: the seed's umbrella command for the tool commands."""
from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from agents.models import Tool

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("tools", *args, stdout=out)
    return out.getvalue()


def test_tools_validate_registers_and_tools_list_shows_them() -> None:
    assert "✓ get_weather" in run("validate")
    assert Tool.objects.filter(name="get_weather", kind="python").exists()
    rows = [json.loads(line) for line in run("list", "--json").splitlines()]
    assert any(r["name"] == "get_weather" and r["kind"] == "python" for r in rows)


def test_tools_test_runs_one_call() -> None:
    out = run("test", "get_weather", "--args", '{"city": "Paris"}')
    assert out.startswith("result: The weather in Paris is") and "status: ok" in out
    with pytest.raises(CommandError, match="available: .*get_weather"):
        run("test", "nope")


def test_tools_needs_an_action_and_names_them() -> None:
    result = subprocess.run([sys.executable, "manage.py", "tools"], cwd=settings.BASE_DIR, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0 and "{list,validate,test}" in result.stderr
