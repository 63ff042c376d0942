"""`manage.py metrics` prints what /metrics serves."""
from __future__ import annotations

import io
from typing import Any

from django.core.management import call_command

from workers.metrics import observe_dispatch_latency


def test_metrics_prints_the_prometheus_series(db: Any) -> None:
    observe_dispatch_latency(0.012)
    out = io.StringIO()
    call_command("metrics", "--grep", "controlplane_dispatch_latency", stdout=out, stderr=out)
    assert "controlplane_dispatch_latency_seconds_bucket" in out.getvalue() and "controlplane_jobs" not in out.getvalue()
