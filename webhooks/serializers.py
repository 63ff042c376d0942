"""Webhook API bodies and representations. The secret appears only in the create answer."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from agents.models import Agent
from controlplane.api_base import StrictSerializer
from webhooks.models import WebhookDelivery, WebhookEndpoint, event_type_errors


class WebhookEndpointSerializer(serializers.ModelSerializer):
    agent = serializers.SlugRelatedField(slug_field="agent_id", read_only=True)

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "event_types", "agent", "enabled", "created_at", "updated_at"]
        read_only_fields = fields


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once: store it to verify signatures.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class _EndpointFields(StrictSerializer):
    url = serializers.URLField(max_length=2000)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    event_types = serializers.ListField(child=serializers.CharField(max_length=64), max_length=64)
    agent = serializers.CharField(max_length=255, required=False, allow_null=True,
                                  help_text="An agent_id: only its sessions' events; null for every agent.")
    enabled = serializers.BooleanField(required=False)

    def validate_event_types(self, value: list[str]) -> list[str]:
        errors = event_type_errors(value)
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def validate_agent(self, value: str | None) -> Agent | None:
        if value is None:
            return None
        agent = Agent.objects.live().filter(agent_id=value).first()
        if agent is None:
            raise serializers.ValidationError(f"Agent {value!r} not found.")
        return agent


class WebhookEndpointCreateSerializer(_EndpointFields):
    pass


class WebhookEndpointUpdateSerializer(_EndpointFields):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, partial=True, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) and "secret" in data:
            raise serializers.ValidationError({"secret": ["The secret cannot be set; create a new endpoint to rotate it."]})
        return super().to_internal_value(data)


class WebhookDeliverySerializer(serializers.ModelSerializer):
    webhook_id = serializers.CharField(source="message_id", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "webhook_id", "event_type", "session_id", "seq", "status", "attempts", "response_code",
                  "last_error", "created_at", "last_attempt_at", "next_attempt_at", "delivered_at"]
        read_only_fields = fields


class DeliveryListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["pending", "succeeded", "failed"], required=False)
