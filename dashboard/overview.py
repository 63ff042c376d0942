"""The overview page: fleet, job queue, live sessions, recent errors."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard.access import watcher_required
from dashboard.selectors import overview


@watcher_required
def overview_page(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/overview.html", {**overview(), "nav": "overview"})


@watcher_required
def overview_fragment(request: HttpRequest) -> HttpResponse:
    """The live part of the page, re-fetched when a fleet event arrives."""
    return render(request, "dashboard/_overview_panels.html", overview())
