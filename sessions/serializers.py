"""Serializers of the sessions API: sessions, their event log and operator actions."""
from __future__ import annotations

from rest_framework import serializers

from controlplane.api_base import StrictSerializer
from sessions.models import AgentSession, Participant, SessionEvent, SessionStatus


class ParticipantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Participant
        fields = ["participant_id", "identity", "name", "kind", "permissions", "audio_track", "video_track",
                  "connection_state", "joined_at", "left_at", "metadata"]
        read_only_fields = fields


class SessionSerializer(serializers.ModelSerializer):
    agent = serializers.SlugRelatedField(slug_field="agent_id", read_only=True)
    job = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = AgentSession
        fields = [
            "session_id", "job", "agent", "agent_version", "room_id", "room_sid", "transport", "status", "agent_state",
            "user_state", "metrics", "error", "end_reason", "last_seq", "started_at", "last_activity_at", "ended_at",
        ]
        read_only_fields = fields


class SessionDetailSerializer(SessionSerializer):
    participants = ParticipantSerializer(many=True, read_only=True)

    class Meta(SessionSerializer.Meta):
        fields = [*SessionSerializer.Meta.fields, "participants", "conversation_state", "audio_state", "user_data"]
        read_only_fields = fields


class SessionEventSerializer(serializers.ModelSerializer):
    session_id = serializers.CharField(read_only=True)

    class Meta:
        model = SessionEvent
        fields = ["session_id", "seq", "type", "at", "data"]
        read_only_fields = fields


class SessionListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=SessionStatus.choices, required=False)
    agent = serializers.CharField(max_length=255, required=False, help_text="agent_id")
    job = serializers.CharField(max_length=40, required=False, help_text="job_id")
    live = serializers.BooleanField(required=False, allow_null=True, default=None, help_text="Only sessions still running.")


class EventListQuerySerializer(serializers.Serializer):
    after_seq = serializers.IntegerField(min_value=0, max_value=2**62, required=False, default=0)
    type = serializers.CharField(max_length=64, required=False, help_text="Only events of this type.")


class SayCommandSerializer(StrictSerializer):
    text = serializers.CharField(max_length=10_000, help_text="What the agent should say.")


class MessageCommandSerializer(StrictSerializer):
    text = serializers.CharField(max_length=10_000, help_text="User text sent into the session.")


class EmptyCommandSerializer(StrictSerializer):
    pass


class CommandAcceptedSerializer(serializers.Serializer):
    session_id = serializers.CharField()
    command = serializers.CharField()
    status = serializers.CharField()
