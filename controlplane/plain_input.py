"""A serializer's validated data for plainly valid input, without DRF's per-field machinery.

DRF validates a body field by field: a copy of every declared field for each serializer
instance, then for each field its empty-value checks, its conversion and its validators:
~450 Python calls of each POST /api/v1/jobs/, an eighth of the request. For input that is
plainly valid (a JSON object of known keys whose values already have the types the fields
want, within their limits) `plain_values` gives what DRF's `to_internal_value` gives, read
from the declared fields' own settings. For anything else it gives None and DRF validates
as usual, with its errors: a missing required field, a value to convert (" a ", "5"), a
value to refuse, non-ASCII text, or a field, default or validator it does not know.
tests/api/test_plain_input.py holds the two equal over valid and invalid inputs.
"""
from __future__ import annotations

import copy
import threading
from typing import Any

from django.core import validators as django_validators
from rest_framework import fields as drf_fields
from rest_framework import serializers
from rest_framework import validators as drf_validators

from controlplane.api_base import JsonObjectField, json_value_errors

_NO_VALUE = object()  # a key the input does not have
_TEXT_VALIDATORS = (django_validators.MaxLengthValidator, django_validators.MinLengthValidator,
                    django_validators.ProhibitNullCharactersValidator, drf_validators.ProhibitSurrogateCharactersValidator)
_NUMBER_VALIDATORS = (django_validators.MaxValueValidator, django_validators.MinValueValidator)
_HUGE = 10**100


class _Text:
    def __init__(self, field: serializers.CharField) -> None:
        self.allow_blank, self.allow_null, self.trim = field.allow_blank, field.allow_null, field.trim_whitespace
        self.min_length, self.max_length = field.min_length or 0, field.max_length

    def value(self, data: Any) -> Any:
        if data is None:
            return None if self.allow_null else _NO_VALUE
        if type(data) is not str or not data.isascii():  # ASCII: no surrogates to look for
            return _NO_VALUE
        if data == "" or (self.trim and data.strip() == ""):
            return "" if self.allow_blank else _NO_VALUE
        text = data.strip() if self.trim else data
        if "\x00" in text or len(text) < self.min_length or (self.max_length is not None and len(text) > self.max_length):
            return _NO_VALUE
        return text


class _Choice:
    def __init__(self, field: serializers.ChoiceField) -> None:
        self.allow_blank, self.allow_null, self.values = field.allow_blank, field.allow_null, field.choice_strings_to_values

    def value(self, data: Any) -> Any:
        if data is None:
            return None if self.allow_null else _NO_VALUE
        if type(data) is not str:
            return _NO_VALUE
        if data == "" and self.allow_blank:
            return ""
        return self.values.get(data, _NO_VALUE)


class _Integer:
    def __init__(self, field: serializers.IntegerField) -> None:
        self.allow_null, self.min_value, self.max_value = field.allow_null, field.min_value, field.max_value

    def value(self, data: Any) -> Any:
        if data is None:
            return None if self.allow_null else _NO_VALUE
        if type(data) is not int or not -_HUGE < data < _HUGE:  # DRF converts or refuses a bool, a float, text;
            return _NO_VALUE                                     # str() of a huge int raises
        if (self.min_value is not None and data < self.min_value) or (self.max_value is not None and data > self.max_value):
            return _NO_VALUE
        return data


class _JsonObject:
    def __init__(self, field: JsonObjectField) -> None:
        self.allow_null, self.allow_empty, self.name = field.allow_null, field.allow_empty, None

    def value(self, data: Any) -> Any:
        if data is None:
            return None if self.allow_null else _NO_VALUE
        if type(data) is not dict or (not data and not self.allow_empty):
            return _NO_VALUE
        if any(type(key) is not str for key in data):
            return _NO_VALUE
        value = dict(data)  # DRF's child validation builds a new dict of the same items
        return _NO_VALUE if json_value_errors(value, self.name or "value") else value


def _rule(name: str, field: serializers.Field) -> Any:
    """The rule for a declared field, or None when it is not one of the plain kinds here."""
    if field.read_only or field.source not in (None, name):
        return None
    kinds = {serializers.CharField: (_Text, _TEXT_VALIDATORS), serializers.ChoiceField: (_Choice, ()),
             serializers.IntegerField: (_Integer, _NUMBER_VALIDATORS), JsonObjectField: (_JsonObject, ())}
    kind = kinds.get(type(field))  # exactly these classes: a subclass may convert differently
    if kind is None:
        return None
    rule_class, known_validators = kind
    if any(type(v) not in known_validators for v in field.validators):
        return None
    if rule_class is _JsonObject and type(field.child) is not drf_fields._UnvalidatedField:
        return None
    rule = rule_class(field)
    if rule_class is _JsonObject:
        rule.name = name
    return rule


class _Plan:
    def __init__(self, serializer_class: type[serializers.Serializer]) -> None:
        # read from a copy: reading a declared field's validators must not leave state on it
        declared = copy.deepcopy(serializer_class._declared_fields)
        self.fields: list[tuple[str, Any, bool, Any]] = []
        self.usable = _serializer_is_plain(serializer_class)
        for name, field in declared.items():
            rule = _rule(name, field)
            default = field.default
            if rule is None or getattr(serializer_class, f"validate_{name}", None) is not None or (
                    callable(default) and getattr(default, "requires_context", False)):
                self.usable = False
                break
            self.fields.append((name, rule, field.required, default))
        self.names = frozenset(name for name, *_ in self.fields)


def _serializer_is_plain(serializer_class: type[serializers.Serializer]) -> bool:
    """No serializer-level validators (DRF's Serializer.get_validators reads Meta.validators)."""
    meta = getattr(serializer_class, "Meta", None)
    return (not getattr(meta, "validators", None)
            and serializer_class.get_validators is serializers.Serializer.get_validators
            and serializer_class.run_validators is serializers.Serializer.run_validators)


_plans: dict[type, _Plan] = {}
_plans_lock = threading.Lock()


def _plan(serializer_class: type[serializers.Serializer]) -> _Plan:
    plan = _plans.get(serializer_class)
    if plan is None:
        with _plans_lock:
            plan = _plans.setdefault(serializer_class, _Plan(serializer_class))
    return plan


def plain_values(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any] | None:
    """What `serializer_class(data=data)` validates `data` to before its `validate()` (DRF's
    `to_internal_value`, unknown keys refused as StrictSerializer does), when `data` is plainly
    valid; else None."""
    plan = _plan(serializer_class)
    if not plan.usable or type(data) is not dict or not plan.names.issuperset(data):
        return None
    values: dict[str, Any] = {}
    for name, rule, required, default in plan.fields:
        raw = data.get(name, _NO_VALUE)
        if raw is _NO_VALUE:
            if required:
                return None
            if default is drf_fields.empty:
                continue  # DRF skips the field
            values[name] = default() if callable(default) else default
            continue
        value = rule.value(raw)
        if value is _NO_VALUE:
            return None
        values[name] = value
    return values
