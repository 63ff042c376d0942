"""`manage.py scale WORKER --capacity N` records a capacity only once the worker applied it."""
from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from controlplane.celery import app
from tests.helpers import wait_for
from tests.workers.fleet import Fleet
from workers.models import Worker


def test_in_embedded_mode_it_refuses_instead_of_recording_a_capacity_no_worker_applied(
        online_worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    online_worker("embedded@host", capacity=4)
    monkeypatch.setattr(app.conf, "broker_url", "memory://")  # the embedded mode's broker
    with pytest.raises(CommandError, match="in-memory.*WORKER_MAX_CONCURRENT_JOBS"):
        call_command("scale", "embedded@host", "--capacity", "8", stdout=StringIO())
    assert Worker.objects.get(pk="embedded@host").capacity == 4


@pytest.mark.integration
def test_a_worker_that_does_not_answer_keeps_its_capacity(online_worker: Any) -> None:
    online_worker("silent@nowhere", capacity=4)  # registered, but no process listens on the broker
    with pytest.raises(CommandError, match="did not confirm"):
        call_command("scale", "silent@nowhere", "--capacity", "8", stdout=StringIO())
    assert Worker.objects.get(pk="silent@nowhere").capacity == 4


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_live_worker_grows_and_the_capacity_is_recorded(fleet: Fleet) -> None:
    (w1,) = fleet.start("scale", concurrency=2, WORKER_REPORT_CPU_LOAD="false")
    out = StringIO()
    call_command("scale", w1.name, "--capacity", "5", stdout=out)
    assert "capacity 2 → 5" in out.getvalue()
    assert Worker.objects.get(pk=w1.name).capacity == 5
    stats = wait_for(lambda: (app.control.inspect([w1.name], timeout=2).stats() or {}).get(w1.name), timeout=10,
                     what="stats")
    assert stats["pool"]["max-concurrency"] == 5
