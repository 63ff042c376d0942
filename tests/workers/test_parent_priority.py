"""A run_session message inherits a priority only when sent from inside a task with
task_inherit_parent_priority on: then it goes the send_task way (workers.run_session_publish)."""
from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

from controlplane.celery import app
from workers.run_session_publish import _parent_priority


@pytest.mark.parametrize(("inherit", "in_task", "expected"), [
    (True, True, True), (True, False, False), (False, True, False), (False, False, False),
])
def test_only_a_task_with_the_setting_on_inherits(monkeypatch: pytest.MonkeyPatch, inherit: bool, in_task: bool,
                                                   expected: bool) -> None:
    monkeypatch.setitem(app.conf, "task_inherit_parent_priority", inherit)
    current: Any = object() if in_task else None
    monkeypatch.setattr(Celery, "current_worker_task", property(lambda self: current))
    assert _parent_priority() is expected
