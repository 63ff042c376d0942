"""Serializers of the jobs and workers API.

JobCreateSerializer and IdempotencyKeySerializer are the one definition of a valid job
request: the API validates its body and header with them, and `job_dispatch` (the
`dispatch` command, in-process callers) its arguments, through `job_request_clean` and
`idempotency_key_clean`, which turn the first error into a DomainError naming the field.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.fields import empty

from controlplane.api_base import JsonObjectField, StrictSerializer, declared_fields_copy
from controlplane.errors import DomainError
from controlplane.plain_input import plain_values
from workers.models import Job, JobStatus, JobType, Transport, Worker, WorkerStatus


class JobSerializer(serializers.ModelSerializer):
    agent = serializers.SlugRelatedField(slug_field="agent_id", read_only=True)
    room = serializers.CharField(source="room_name", read_only=True)
    room_data = serializers.JSONField(source="room", read_only=True)
    assigned_worker = serializers.PrimaryKeyRelatedField(read_only=True)
    session_id = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "job_id", "job_type", "agent", "agent_version", "room", "room_data", "participant_identity", "participants",
            "transport", "worker_type", "status", "priority", "metadata", "assigned_worker", "attempts", "max_attempts",
            "failure_reason", "idempotency_key", "session_id", "created_at", "assigned_at", "started_at", "completed_at",
        ]
        read_only_fields = fields

    def get_session_id(self, job: Job) -> str | None:
        try:
            return job.session.session_id
        except ObjectDoesNotExist:  # not started yet
            return None

    def to_representation(self, instance: Job) -> dict[str, Any]:
        """The fields above, written out: DRF would build (deep-copy) 23 field objects for every
        job it renders, which cost more than the dispatch's INSERT (bench/profile_dispatch.py).
        tests/api pins this output to the generic ModelSerializer's, field for field."""
        return job_representation(instance, self.get_session_id(instance))


_datetime = serializers.DateTimeField(read_only=True)


def _when(value: Any) -> str | None:
    return None if value is None else _datetime.to_representation(value)


def job_representation(job: Job, session_id: str | None) -> dict[str, Any]:
    agent = job.agent if job.agent_id is not None else None
    return {
        "job_id": job.job_id, "job_type": str(job.job_type), "agent": agent.agent_id if agent is not None else None,
        "agent_version": job.agent_version, "room": job.room_name, "room_data": job.room,
        "participant_identity": job.participant_identity, "participants": job.participants, "transport": str(job.transport),
        "worker_type": str(job.worker_type), "status": str(job.status), "priority": job.priority, "metadata": job.metadata,
        "assigned_worker": job.assigned_worker_id, "attempts": job.attempts, "max_attempts": job.max_attempts,
        "failure_reason": job.failure_reason, "idempotency_key": job.idempotency_key, "session_id": session_id,
        "created_at": _when(job.created_at), "assigned_at": _when(job.assigned_at), "started_at": _when(job.started_at),
        "completed_at": _when(job.completed_at),
    }


AUDIO_SAMPLE_RATES = (8000, 16000, 32000, 48000)


class JobCreateSerializer(StrictSerializer):
    job_type = serializers.ChoiceField(
        choices=JobType.choices, required=False, default=JobType.AGENT_SESSION,
        help_text="agent_session (default); tool_execution: metadata {tool, arguments}; "
                  "audio_processing: metadata {pcm16_base64, sample_rate}.",
    )
    agent = serializers.CharField(max_length=255, required=False, allow_null=True, default=None,
                                  help_text="agent_id of an active agent (required for agent_session).")
    room = serializers.CharField(max_length=255, required=False, default="",
                                 help_text="Room name (LiveKit room, or a label for local sessions); "
                                           "required for agent_session.")
    metadata = JsonObjectField(required=False, default=dict)
    priority = serializers.IntegerField(min_value=1, max_value=10, required=False, default=5, help_text="1 is the highest.")
    participant_identity = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    transport = serializers.ChoiceField(
        choices=Transport.choices, required=False, allow_null=True, default=None,
        help_text="Default: livekit when LiveKit credentials are configured, else local.",
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        return declared_fields_copy(self._declared_fields)  # one per POST /jobs/: DRF's deep copy cost 0.1 ms

    def run_validation(self, data: Any = empty) -> Any:
        """DRF's, with plainly valid input validated without its field machinery (no field copies:
        see controlplane.plain_input). Only while this instance's fields are the declared ones
        (none built, so none changed) and for a full (not partial) request; any error is DRF's."""
        if "fields" not in self.__dict__ and not self.partial:
            values = plain_values(type(self), data)
            if values is not None:
                try:
                    return self.validate(values)
                except (serializers.ValidationError, DjangoValidationError):
                    pass  # DRF's own run below reports it, as it would have
        return super().run_validation(data)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        job_type, metadata = data["job_type"], data["metadata"]
        if job_type == JobType.AGENT_SESSION:
            # the messages a required field gives: agent_session is the default type
            if not data["agent"]:
                raise serializers.ValidationError({"agent": ["This field is required."]})
            if not data["room"].strip():
                raise serializers.ValidationError({"room": ["This field is required."]})
        elif not data["room"].strip():
            data["room"] = job_type  # a label: these jobs join no room
        if not isinstance(metadata.get("delete_room_on_end", False), bool):  # else silently the setting's
            raise serializers.ValidationError({"metadata": ["metadata.delete_room_on_end must be true or false."]})
        if job_type == JobType.TOOL_EXECUTION:
            tool = metadata.get("tool")
            if not isinstance(tool, str) or not tool.strip():
                raise serializers.ValidationError({"metadata": ["metadata.tool must name the tool to run."]})
            if not isinstance(metadata.get("arguments", {}), dict):
                raise serializers.ValidationError({"metadata": ["metadata.arguments must be a JSON object."]})
        elif job_type == JobType.AUDIO_PROCESSING:
            if not isinstance(metadata.get("pcm16_base64"), str) or not metadata["pcm16_base64"]:
                raise serializers.ValidationError({"metadata": ["metadata.pcm16_base64 must hold the audio (16-bit PCM, base64)."]})
            if metadata.get("sample_rate", 16000) not in AUDIO_SAMPLE_RATES:
                raise serializers.ValidationError(
                    {"metadata": [f"metadata.sample_rate must be one of {', '.join(map(str, AUDIO_SAMPLE_RATES))}."]})
        return data


IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_META = "HTTP_" + IDEMPOTENCY_HEADER.upper().replace("-", "_")


class IdempotencyKeySerializer(serializers.Serializer):
    key = serializers.CharField(max_length=255, required=False, allow_null=True, default=None)

    def validate_key(self, value: str | None) -> str | None:
        if value is not None and (not value.strip() or not value.isprintable()):
            raise serializers.ValidationError("Idempotency-Key must be 1-255 printable characters.")
        return value

    @classmethod
    def from_request(cls, request: Any) -> str | None:
        # META, not request.headers (the same value: its one entry named so), whose first use
        # turns every META entry into a header name: ~60 Python calls of each POST /jobs/
        raw = request.META.get(_IDEMPOTENCY_META)
        if raw is None:  # no header: nothing to check (a serializer per request cost more than the check)
            return None
        check = cls(data={"key": raw})
        if not check.is_valid():
            raise serializers.ValidationError({IDEMPOTENCY_HEADER: check.errors["key"]})
        return check.validated_data["key"]


def _first_error(errors: Any) -> str:
    """The first message of a serializer's (possibly nested) errors."""
    if isinstance(errors, Mapping):
        return _first_error(next(iter(errors.values()), ""))
    if isinstance(errors, list):
        return _first_error(errors[0]) if errors else ""
    return str(errors)


def job_request_clean(data: Mapping[str, Any]) -> dict[str, Any]:
    """A job request checked by JobCreateSerializer, for callers other than the API."""
    request = JobCreateSerializer(data=data)
    if not request.is_valid():
        field, errors = next(iter(request.errors.items()))
        raise DomainError(_first_error(errors), field=field)
    return dict(request.validated_data)


def idempotency_key_clean(key: str | None) -> str | None:
    """An Idempotency-Key checked by IdempotencyKeySerializer, for callers other than the API."""
    check = IdempotencyKeySerializer(data={"key": key})
    if not check.is_valid():
        raise DomainError(_first_error(check.errors["key"]), field="idempotency_key")
    return check.validated_data["key"]


class JobListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    agent = serializers.CharField(max_length=255, required=False, help_text="agent_id")


class WorkerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Worker
        fields = [
            "worker_id", "hostname", "queue", "agent_name", "worker_type", "serves", "region", "version", "capacity", "weight",
            "status", "status_reason", "load", "active_jobs", "circuit_state", "consecutive_failures", "circuit_opened_at",
            "health_check_port", "metadata", "started_at", "last_heartbeat_at",
        ]
        read_only_fields = fields


class WorkerListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=WorkerStatus.choices, required=False)
