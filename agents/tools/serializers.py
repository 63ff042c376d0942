"""Serializers of the tools API. Secret header values never leave the server."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from agents.models import Tool, ToolExecution
from controlplane.api_base import JsonObjectField, StrictSerializer

from .schema import MAX_DESCRIPTION, MAX_TIMEOUT_MS, MIN_TIMEOUT_MS, NAME_RE
from .secrets import redact_headers


class ToolStatsSerializer(serializers.Serializer):
    calls = serializers.IntegerField()
    errors = serializers.IntegerField()
    timeouts = serializers.IntegerField()
    total_latency_ms = serializers.FloatField()
    average_latency_ms = serializers.FloatField()


class ToolHttpSerializer(serializers.Serializer):
    url = serializers.CharField()
    method = serializers.CharField()
    headers = serializers.DictField(help_text='Header values: plain text, {"env": NAME}, or "********" for a secret.')
    retries = serializers.IntegerField()


class ToolSerializer(serializers.ModelSerializer):
    stats = serializers.SerializerMethodField()
    http = serializers.SerializerMethodField()

    class Meta:
        model = Tool
        fields = (
            "name", "description", "kind", "execution", "timeout_ms", "enabled", "schema",
            "module", "function", "arity", "parameters", "return_type", "metadata", "http",
            "stats", "created_at", "updated_at",
        )
        read_only_fields = fields

    def get_stats(self, tool: Tool) -> dict[str, Any]:
        return ToolStatsSerializer({
            "calls": tool.calls, "errors": tool.errors, "timeouts": tool.timeouts,
            "total_latency_ms": tool.total_latency_ms, "average_latency_ms": tool.average_latency_ms,
        }).data

    def get_http(self, tool: Tool) -> dict[str, Any] | None:
        if tool.kind != "http":
            return None
        return ToolHttpSerializer({
            "url": tool.http_url, "method": tool.http_method,
            "headers": redact_headers(tool.http_headers), "retries": tool.http_retries,
        }).data



class ToolListQuerySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["python", "http"], required=False)
    execution = serializers.ChoiceField(choices=ToolExecution.choices, required=False)
    enabled = serializers.BooleanField(required=False, allow_null=True, default=None)
    q = serializers.CharField(required=False, max_length=200)


class HttpToolCreateSerializer(StrictSerializer):
    name = serializers.RegexField(NAME_RE, max_length=64, error_messages={
        "invalid": "Tool names must be identifiers: a letter or underscore, then letters, digits or underscores."})
    description = serializers.CharField(max_length=MAX_DESCRIPTION)
    url = serializers.URLField(max_length=2000)
    method = serializers.ChoiceField(choices=["GET", "POST", "PUT", "PATCH", "DELETE"], default="POST")
    headers = JsonObjectField(required=False, default=dict, help_text=(
        'Header name → plain value, {"env": "ENV_VAR"} (read at call time) or {"secret": "value"} '
        "(encrypted at rest). Values of secret-looking headers are always encrypted."))
    parameters = JsonObjectField(required=False, default=dict, help_text="JSON schema of the arguments (type object).")
    timeout_ms = serializers.IntegerField(min_value=MIN_TIMEOUT_MS, max_value=MAX_TIMEOUT_MS, default=30_000)
    retries = serializers.IntegerField(min_value=0, max_value=10, default=0)
    execution = serializers.ChoiceField(choices=ToolExecution.choices, default="inline")
    enabled = serializers.BooleanField(default=True)
    metadata = JsonObjectField(required=False, default=dict)

    def validate_url(self, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise serializers.ValidationError("HTTP tools need an http:// or https:// URL.")
        return value


class ToolUpdateSerializer(StrictSerializer):
    """PATCH: only the fields sent change. A code tool takes timeout_ms, execution, enabled, metadata."""

    description = serializers.CharField(max_length=MAX_DESCRIPTION, required=False)
    url = serializers.URLField(max_length=2000, required=False)
    method = serializers.ChoiceField(choices=["GET", "POST", "PUT", "PATCH", "DELETE"], required=False)
    headers = JsonObjectField(required=False, help_text='As on create; "********" keeps a stored secret.')
    parameters = JsonObjectField(required=False)
    timeout_ms = serializers.IntegerField(min_value=MIN_TIMEOUT_MS, max_value=MAX_TIMEOUT_MS, required=False)
    retries = serializers.IntegerField(min_value=0, max_value=10, required=False)
    execution = serializers.ChoiceField(choices=ToolExecution.choices, required=False)
    enabled = serializers.BooleanField(required=False)
    metadata = JsonObjectField(required=False)

    def validate_url(self, value: str) -> str:
        return HttpToolCreateSerializer.validate_url(self, value)  # type: ignore[arg-type]


class ToolTestSerializer(StrictSerializer):
    arguments = serializers.JSONField(required=False, default=dict, help_text="An object, or the raw JSON string a model would send.")
    session_id = serializers.CharField(required=False, default="", max_length=255)
    agent_id = serializers.CharField(required=False, default="", max_length=255)

    def validate_arguments(self, value: Any) -> Any:
        if not isinstance(value, (dict, str)):
            raise serializers.ValidationError("arguments must be an object or a JSON string")
        return value


class ToolResultSerializer(serializers.Serializer):
    call_id = serializers.CharField()
    name = serializers.CharField()
    output = serializers.CharField(allow_blank=True)
    is_error = serializers.BooleanField()
    error_kind = serializers.CharField(allow_null=True)
    duration_ms = serializers.FloatField()
