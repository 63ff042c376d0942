"""Settings read from the environment refuse values outside their range, naming the variable."""
from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from controlplane.env import env_float


@pytest.mark.parametrize("raw", ["0", "-1", "1.5", "nan"])
def test_a_float_outside_its_range_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("CP_TEST_SHARE", raw)
    with pytest.raises(ImproperlyConfigured, match=rf"CP_TEST_SHARE must be at (least 0.001|most 1), got '{raw}'"):
        env_float("CP_TEST_SHARE", 0.05, minimum=0.001, maximum=1.0)


def test_a_float_in_range_or_unset_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CP_TEST_SHARE", "0.25")
    assert env_float("CP_TEST_SHARE", 0.05, minimum=0.001, maximum=1.0) == 0.25
    monkeypatch.delenv("CP_TEST_SHARE")
    assert env_float("CP_TEST_SHARE", 0.05, minimum=0.001, maximum=1.0) == 0.05
