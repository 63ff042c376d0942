from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.db import models

from controlplane.ids import new_session_id


class SessionStatus(models.TextChoices):
    INITIALIZING = "initializing"
    CONNECTED = "connected"
    ACTIVE = "active"
    PAUSED = "paused"
    DISCONNECTED = "disconnected"
    ERROR = "error"


LIVE_SESSION_STATUSES = (SessionStatus.INITIALIZING, SessionStatus.CONNECTED, SessionStatus.ACTIVE, SessionStatus.PAUSED)


class AgentSessionQuerySet(models.QuerySet):
    def live(self) -> AgentSessionQuerySet:
        return self.filter(status__in=LIVE_SESSION_STATUSES)


def validate_audio_state(value: Any) -> list[str]:
    """The seed's AudioState rules."""
    if not isinstance(value, dict):
        return ["audio_state must be a JSON object."]
    errors = []
    sensitivity = value.get("vad_sensitivity")
    if sensitivity is not None and (
        isinstance(sensitivity, bool) or not isinstance(sensitivity, (int, float)) or not 0.0 <= sensitivity <= 1.0
    ):
        errors.append("vad_sensitivity must be a number between 0.0 and 1.0.")
    buffer_size = value.get("buffer_size")
    if buffer_size is not None and (isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size <= 0):
        errors.append("buffer_size must be a positive integer (samples).")
    latency = value.get("latency_ms")
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0):
        errors.append("latency_ms must be a non-negative number.")
    fmt = value.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict):
            errors.append("format must be an object with encoding, sample_rate and channels.")
        else:
            if fmt.get("encoding", "pcm16") != "pcm16":
                errors.append("format.encoding must be 'pcm16'.")
            if fmt.get("sample_rate") not in (8000, 16000, 24000, 32000, 44100, 48000):
                errors.append("format.sample_rate must be one of 8000, 16000, 24000, 32000, 44100, 48000.")
            if fmt.get("channels") not in (1, 2):
                errors.append("format.channels must be 1 or 2.")
    for flag in ("vad_enabled", "is_speaking", "is_muted", "stream_active"):
        if flag in value and not isinstance(value[flag], bool):
            errors.append(f"{flag} must be true or false.")
    return errors


class AgentSession(models.Model):
    session_id = models.CharField(primary_key=True, max_length=40, default=new_session_id, editable=False)
    job = models.OneToOneField("workers.Job", on_delete=models.CASCADE, related_name="session", null=True, blank=True)
    agent = models.ForeignKey("agents.Agent", on_delete=models.PROTECT, related_name="sessions")
    agent_version = models.PositiveIntegerField()
    room_id = models.CharField(max_length=255)
    room_sid = models.CharField(max_length=255, blank=True)
    transport = models.CharField(max_length=16, default="local")
    status = models.CharField(max_length=16, choices=SessionStatus.choices, default=SessionStatus.INITIALIZING)
    agent_state = models.CharField(max_length=16, default="initializing")
    user_state = models.CharField(max_length=16, default="listening")
    conversation_state = models.JSONField(default=dict, blank=True)
    audio_state = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    user_data = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    end_reason = models.CharField(max_length=255, blank=True)
    last_seq = models.PositiveBigIntegerField(default=0, editable=False)
    started_at = models.DateTimeField(auto_now_add=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = AgentSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["status"]), models.Index(fields=["agent", "-started_at"])]

    def __str__(self) -> str:
        return self.session_id

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if not (self.room_id or "").strip():
            errors["room_id"] = ["room_id is required."]
        audio_errors = validate_audio_state(self.audio_state)
        if audio_errors:
            errors["audio_state"] = audio_errors
        if self.started_at:
            if self.last_activity_at and self.last_activity_at < self.started_at:
                errors["last_activity_at"] = ["last_activity_at cannot be before started_at."]
            if self.ended_at and self.ended_at < self.started_at:
                errors["ended_at"] = ["ended_at cannot be before started_at."]
        if errors:
            raise ValidationError(errors)


class ParticipantKind(models.TextChoices):
    STANDARD = "standard"
    SIP = "sip"
    AGENT = "agent"


class ConnectionState(models.TextChoices):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"


class Participant(models.Model):
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="participants")
    participant_id = models.CharField(max_length=255)
    identity = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=16, choices=ParticipantKind.choices, default=ParticipantKind.STANDARD)
    permissions = models.JSONField(default=dict, blank=True)
    audio_track = models.JSONField(default=dict, blank=True)
    video_track = models.JSONField(default=dict, blank=True)
    connection_state = models.CharField(max_length=16, choices=ConnectionState.choices, default=ConnectionState.CONNECTED)
    joined_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["joined_at"]
        constraints = [models.UniqueConstraint(fields=["session", "participant_id"], name="participant_unique_in_session")]

    def __str__(self) -> str:
        return self.identity

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if not (self.identity or "").strip():
            errors["identity"] = ["identity is required."]
        for track in ("audio_track", "video_track"):
            value = getattr(self, track)
            if not isinstance(value, dict):
                errors[track] = [f"{track} must be a JSON object."]
            elif value and not isinstance(value.get("sid", ""), str):
                errors[track] = [f"{track}.sid must be a string."]
        if self.left_at and self.joined_at and self.left_at < self.joined_at:
            errors["left_at"] = ["left_at cannot be before joined_at."]
        if errors:
            raise ValidationError(errors)


class SessionEvent(models.Model):
    """One event of a session, stored before it is broadcast. `seq` is gap-free per session."""

    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    type = models.CharField(max_length=64)
    at = models.DateTimeField()
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["session", "seq"]
        constraints = [models.UniqueConstraint(fields=["session", "seq"], name="session_event_seq_unique")]
        indexes = [models.Index(fields=["type", "-at"])]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.seq} {self.type}"

    def envelope(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "seq": self.seq,
            "type": self.type,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "data": self.data,
        }


def recordings_storage() -> Any:
    """settings.STORAGES["recordings"]: local MEDIA_ROOT by default, S3 etc. by configuration."""
    return storages["recordings"]


class Recording(models.Model):
    """A call's audio, both directions mixed to one file (written while the call ran)."""

    session = models.OneToOneField(AgentSession, on_delete=models.CASCADE, primary_key=True, related_name="recording")
    file = models.FileField(storage=recordings_storage, max_length=500)
    content_type = models.CharField(max_length=64, default="audio/wav")
    sample_rate = models.PositiveIntegerField()
    duration_ms = models.PositiveBigIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    dropped_frames = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return self.file.name
