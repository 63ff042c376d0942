"""A JSON body a view reads before authentication (controlplane.api_base.json_body_early: the
dispatch's agent name) is decoded once: `request.data` is that value, and whatever the early
decode refuses is decoded, and refused or accepted, by DRF's parser as before."""
from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from controlplane.api_base import SafeJSONParser, json_body_early


def _request(body: bytes, content_type: str = "application/json") -> Request:
    http = APIRequestFactory().post("/api/v1/jobs/", data=body, content_type=content_type)
    return Request(http, parsers=[SafeJSONParser()])


def _parsed_by_drf(body: bytes, content_type: str = "application/json") -> Any:
    return _request(body, content_type).data


def test_the_early_decode_is_what_request_data_hands_on() -> None:
    body = json.dumps({"agent": "support", "room": "r", "metadata": {"nested": [1, 2.5, None, "é"]}}).encode()
    request = _request(body)

    early = json_body_early(request)

    assert request.data is early
    assert early == _parsed_by_drf(body)


@pytest.mark.parametrize("body", [b'{"a": NaN}', b'{"a": Infinity}', b'{"agent": "x", "room": ', b"\xff\xfe{}",
                                  b"[" * 100_000])
def test_what_the_early_decode_refuses_drf_refuses_after_it(body: bytes) -> None:
    request = _request(body)

    with pytest.raises((ValueError, RecursionError)):
        json_body_early(request)
    with pytest.raises(ParseError):
        request.data  # noqa: B018 - the parse is the point


def test_another_charset_is_decoded_by_drf_itself() -> None:
    body = json.dumps({"agent": "süpport"}).encode("utf-16")
    content_type = "application/json; charset=utf-16"
    request = _request(body, content_type)

    with pytest.raises(ValueError):
        json_body_early(request)  # UTF-8 only
    assert request.data == {"agent": "süpport"} == _parsed_by_drf(body, content_type)


def test_a_utf8_body_named_by_another_spelling_is_decoded_again_by_drf() -> None:
    body = json.dumps({"agent": "support"}).encode()
    request = _request(body, "application/json; charset=UTF-8")

    early = json_body_early(request)

    assert request.data == early and request.data is not early
