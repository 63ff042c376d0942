"""Shared pieces of the REST API views: base view, strict serializers, safe lookups.

Every API view authenticates (API key or login), checks a scope with `HasScope`,
validates with a serializer and calls one service. The helpers here keep input that the
database would choke on (NUL characters, lone surrogates, NaN, absurd nesting) out of
the services, so bad input gets a 400 or 404 naming the field instead of a 500.
"""
from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from typing import Any

from django.db import models
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, pagination, parsers, serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.utils import json as drf_json
from rest_framework.views import APIView

from controlplane.api_auth import HasScope
from controlplane.errors import NotFound
from controlplane.models import ApiKey
from controlplane.scopes import READ

MAX_JSON_DEPTH = 32
_NOT_PARSED = object()


class Pagination(pagination.LimitOffsetPagination):
    default_limit = 50
    max_limit = 500
    max_offset = 2**31  # the database refuses offsets past a 64-bit integer; no list is this long

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), self.max_offset)


_PARSED_BODY = "_api_json_body"  # on the HttpRequest: its JSON body, parsed by json_body_early


def json_body_early(request: Request) -> Any:
    """The request's JSON body, decoded before DRF parses it (a view that must read a field of
    it before authentication: workers.api), as SafeJSONParser decodes it: the request's UTF-8
    text, NaN and Infinity refused (STRICT_JSON). The parser then hands this value to
    `request.data` instead of decoding the body a second time. Raises what decoding raises
    (ValueError, RecursionError; the body may be unreadable): nothing is kept then, and
    `request.data` decodes as usual and reports the error in its turn, after authentication.
    Other charsets are decoded here only (DRF decodes those as a stream)."""
    http = request._request
    value = json.loads(http.body.decode("utf-8"),
                       parse_constant=drf_json.strict_constant if SafeJSONParser.strict else None)
    if (request.parser_context or {}).get("encoding") == "utf-8":  # the charset the parser will use
        setattr(http, _PARSED_BODY, value)
    return value


class SafeJSONParser(parsers.JSONParser):
    """DRF's JSON parser turns ValueError into a 400 but lets RecursionError (absurdly
    nested input, e.g. 100,000 '[') escape as a 500."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parsed = getattr(getattr((parser_context or {}).get("request"), "_request", None), _PARSED_BODY, _NOT_PARSED)
        if parsed is not _NOT_PARSED:  # decoded as this would decode it (json_body_early)
            return parsed
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the document is nested too deeply") from None


class ApiContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, answered at once in the common case: no `format` override and an
    Accept header that is absent, `*/*` or exactly the first renderer's media type. DRF then
    picks that first renderer with its own media type too (tests/api/test_content_negotiation.py
    holds the two equal), after parsing the header and ranking every renderer: 140 Python calls
    of each POST /api/v1/jobs/."""

    def select_renderer(self, request: Any, renderers: Any, format_suffix: str | None = None) -> Any:
        if renderers and not format_suffix:
            first, accept = renderers[0], request.META.get("HTTP_ACCEPT")
            # no query string, no `format` in it: its QueryDict (built on first use of
            # query_params, ~20 Python calls) is not needed to know that
            if (accept is None or accept == "*/*" or accept == first.media_type) and (
                    not request.META.get("QUERY_STRING") or self.settings.URL_FORMAT_OVERRIDE not in request.query_params):
                return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)


class ApiView(APIView):
    """Base of every REST API view: `read` for safe methods, `write_scope` for the rest."""

    permission_classes = [HasScope]
    content_negotiation_class = ApiContentNegotiation
    parser_classes = [SafeJSONParser, parsers.FormParser, parsers.MultiPartParser]
    read_scope = READ
    write_scope: str | None = None
    pagination_class = Pagination  # read by the schema generator, which documents the envelope

    def paginate(self, request: Request, queryset: Any, serializer_class: type[serializers.BaseSerializer]) -> Any:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)


def api_key_of(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def _is_unsafe_text(value: str) -> bool:
    return "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value)


def json_value_errors(value: Any, path: str, depth: int = 0) -> list[str]:
    """Problems that would make a JSON value unstorable (PostgreSQL jsonb refuses them)."""
    if depth > MAX_JSON_DEPTH:
        return [f"{path}: nested deeper than {MAX_JSON_DEPTH} levels"]
    if isinstance(value, str):
        return [f"{path}: strings may not contain NUL or surrogate characters"] if _is_unsafe_text(value) else []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"{path}: numbers must be finite"]
    if isinstance(value, Mapping):
        errors: list[str] = []
        for key, item in value.items():
            if not isinstance(key, str) or _is_unsafe_text(key):
                errors.append(f"{path}: keys may not contain NUL or surrogate characters")
                continue
            errors.extend(json_value_errors(item, f"{path}.{key}", depth + 1))
        return errors
    if isinstance(value, list | tuple):
        errors = []
        for i, item in enumerate(value):
            errors.extend(json_value_errors(item, f"{path}[{i}]", depth + 1))
        return errors
    return []


class JsonObjectField(serializers.DictField):
    """A JSON object whose every key and value can be stored."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        errors = json_value_errors(value, self.field_name or "value")
        if errors:
            raise serializers.ValidationError(errors)
        return value


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is an error rather than silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(str(k) for k in data if k not in writable)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


def declared_fields_copy(declared: Mapping[str, serializers.Field]) -> dict[str, serializers.Field]:
    """A serializer instance's own fields, for a hot serializer of plain fields.

    DRF deep-copies every declared field for every instance, which re-runs each field's
    constructor (choices, validators): more than the rest of the validation. A plain field
    keeps nothing of its own after construction but what `bind` sets, so a shallow copy per
    instance is enough (the validators and choices it shares are only read). A field with
    a child or fields of its own (a list, a dict, a nested serializer) is deep-copied as DRF does.
    """
    return {
        name: copy.deepcopy(field) if hasattr(field, "child") or hasattr(field, "_declared_fields") else copy.copy(field)
        for name, field in declared.items()
    }


def get_or_404(queryset: models.QuerySet, what: str, **lookup: Any) -> Any:
    """The one row matching `lookup`, or a NotFound naming it (also for unstorable ids)."""
    values = [v for v in lookup.values() if isinstance(v, str)]
    if any(_is_unsafe_text(v) for v in values):
        raise NotFound(f"{what} not found", field=next(iter(lookup)))
    obj = queryset.filter(**lookup).first()
    if obj is None:
        shown = ", ".join(f"{v}" for v in lookup.values())
        raise NotFound(f"{what} '{shown}' not found")
    return obj


class ApiKeySchemeExtension(OpenApiAuthenticationExtension):
    """Documents `Authorization: Bearer <api key>` in the OpenAPI schema."""

    target_class = "controlplane.api_auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer cpk_…`."}
