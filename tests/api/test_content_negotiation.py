"""The API's content negotiation (controlplane.api_base.ApiContentNegotiation) answers the
common Accept headers at once, with the renderer and media type DRF's own negotiation picks."""
from __future__ import annotations

from typing import Any

import pytest
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from controlplane.api_base import ApiContentNegotiation

RENDERER_LISTS = [[JSONRenderer(), BrowsableAPIRenderer()], [BrowsableAPIRenderer(), JSONRenderer()]]
ACCEPTS = [None, "*/*", "application/json", "text/html", "application/json; indent=4", "text/html, */*;q=0.8",
           "application/*", "", "application/json, text/html", "image/png"]


def _choice(negotiation: DefaultContentNegotiation, renderers: list, accept: str | None, query: str = "",
            suffix: str | None = None) -> tuple:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(f"/api/v1/jobs/{query}", **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, suffix)
    except exceptions.NotAcceptable:
        return ("not acceptable",)
    return type(renderer), media_type


@pytest.mark.parametrize("renderers", RENDERER_LISTS)
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize(("query", "suffix"), [("", None), ("?format=api", None), ("?format=json", None), ("", "json")])
def test_it_picks_what_drf_picks(renderers: list, accept: str | None, query: str, suffix: str | None) -> None:
    assert _choice(ApiContentNegotiation(), renderers, accept, query, suffix) == \
        _choice(DefaultContentNegotiation(), renderers, accept, query, suffix)


def test_an_api_answer_is_json_without_an_accept_header_and_the_browsable_page_for_a_browser(api_client: Any) -> None:
    plain = api_client.get("/api/v1/jobs/")
    assert plain.status_code == 200 and plain["Content-Type"] == "application/json"
    browser = api_client.get("/api/v1/jobs/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert browser.status_code == 200 and browser["Content-Type"].startswith("text/html")


def test_without_a_query_string_the_query_is_not_parsed_to_answer() -> None:
    django_request = APIRequestFactory().get("/api/v1/jobs/")
    renderer, media_type = ApiContentNegotiation().select_renderer(Request(django_request), [JSONRenderer()])
    assert (type(renderer), media_type) == (JSONRenderer, "application/json")
    assert "GET" not in django_request.__dict__  # its QueryDict, a cached_property, never built
