"""Serializers of the agent API: input validation and the agent/version representations."""
from __future__ import annotations

from rest_framework import serializers

from agents.models import Agent, AgentState, AgentVersion
from agents.validators import validate_agent_id
from controlplane.api_base import JsonObjectField, StrictSerializer


class AgentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Agent
        fields = [
            "agent_id", "instructions", "tools", "llm_config", "stt_config", "tts_config", "vad_config",
            "turn_config", "recording_config", "metadata", "state", "version", "metrics", "created_at", "updated_at",
        ]
        read_only_fields = fields


class _AgentConfigFields(StrictSerializer):
    instructions = serializers.CharField(max_length=10_000, trim_whitespace=False)
    tools = serializers.ListField(child=serializers.CharField(max_length=64), max_length=128, required=False)
    llm_config = JsonObjectField(required=False)
    stt_config = JsonObjectField(required=False)
    tts_config = JsonObjectField(required=False)
    vad_config = JsonObjectField(required=False)
    turn_config = JsonObjectField(required=False)
    recording_config = JsonObjectField(required=False)
    metadata = JsonObjectField(required=False)

    def validate_instructions(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("Instructions are required.")
        return value


class AgentCreateSerializer(_AgentConfigFields):
    agent_id = serializers.CharField(max_length=255, validators=[validate_agent_id])


class AgentUpdateSerializer(_AgentConfigFields):
    """PATCH body: any config field; `agent_id` and `state` cannot change this way."""

    def to_internal_value(self, data: object) -> object:
        if isinstance(data, dict):
            fixed = {"agent_id": "agent_id cannot change.", "state": "Use the activate/deactivate routes or DELETE."}
            errors = {k: [msg] for k, msg in fixed.items() if k in data}
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class AgentListQuerySerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=AgentState.choices, required=False, help_text="Destroyed agents are listed only when asked for.")


class AgentVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = AgentVersion
        fields = ["version", "config", "created_at", "created_by"]
        read_only_fields = fields
