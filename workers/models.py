from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from controlplane.ids import new_job_id
from workers.worker_types import WorkerType


class JobStatus(models.TextChoices):
    PENDING = "pending"
    ASSIGNED = "assigned"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_JOB_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobType(models.TextChoices):
    AGENT_SESSION = "agent_session"
    TOOL_EXECUTION = "tool_execution"
    AUDIO_PROCESSING = "audio_processing"


class Transport(models.TextChoices):
    LIVEKIT = "livekit"
    LOCAL = "local"


class JobQuerySet(models.QuerySet):
    def pending(self) -> JobQuerySet:
        return self.filter(status=JobStatus.PENDING)

    def unfinished(self) -> JobQuerySet:
        return self.exclude(status__in=FINISHED_JOB_STATUSES)

    def in_dispatch_order(self) -> JobQuerySet:
        # priority 1 is the highest; then oldest first
        return self.order_by("priority", "created_at")


class Job(models.Model):
    job_id = models.CharField(primary_key=True, max_length=40, default=new_job_id, editable=False)
    job_type = models.CharField(max_length=32, choices=JobType.choices, default=JobType.AGENT_SESSION)
    agent = models.ForeignKey("agents.Agent", on_delete=models.PROTECT, related_name="jobs", null=True, blank=True)
    agent_version = models.PositiveIntegerField(null=True, blank=True)
    room_name = models.CharField(max_length=255, blank=True)
    room = models.JSONField(default=dict, blank=True, help_text="LiveKit room data (name, sid, …).")
    participant_identity = models.CharField(max_length=255, blank=True)
    participants = models.JSONField(default=list, blank=True)
    transport = models.CharField(max_length=16, choices=Transport.choices, default=Transport.LOCAL)
    worker_type = models.CharField(max_length=32, blank=True, help_text="The worker type this job needs; blank = any.")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    priority = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(1), MaxValueValidator(10)])
    metadata = models.JSONField(default=dict, blank=True)
    assigned_worker = models.ForeignKey("workers.Worker", on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs")
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3, validators=[MinValueValidator(1), MaxValueValidator(100)])
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    api_key = models.ForeignKey("controlplane.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs")
    # set by whoever creates the job (not auto_now_add, which stamps it at save time): dispatch
    # gives created_at and assigned_at one clock reading, so assigned_at is never earlier
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    assigned_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "priority", "created_at"])]
        constraints = [
            models.UniqueConstraint(fields=["api_key", "idempotency_key"], name="job_idempotency_unique"),
            models.CheckConstraint(condition=models.Q(priority__gte=1, priority__lte=10), name="job_priority_1_to_10"),
        ]

    def __str__(self) -> str:
        return self.job_id

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.job_type == JobType.AGENT_SESSION:
            if not self.agent_id:
                errors["agent"] = ["An agent session job needs an agent."]
            if not (self.room_name or "").strip():
                errors["room_name"] = ["An agent session job needs a room name."]
        if not isinstance(self.room, dict):
            errors["room"] = ["room must be a JSON object."]
        elif self.room.get("name") not in (None, self.room_name):
            errors["room"] = ["room.name must match room_name."]
        # chronologically consistent timestamps
        order = [("created_at", self.created_at), ("assigned_at", self.assigned_at), ("started_at", self.started_at), ("completed_at", self.completed_at)]
        present = [(name, ts) for name, ts in order if ts is not None]
        for (earlier_name, earlier), (later_name, later) in zip(present, present[1:]):
            if later < earlier:
                errors.setdefault(later_name, []).append(f"{later_name} cannot be before {earlier_name}.")
        if errors:
            raise ValidationError(errors)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_JOB_STATUSES


class WorkerStatus(models.TextChoices):
    ONLINE = "online"
    UNREADY = "unready"  # alive (heartbeat) but its Celery consumer cannot take work: see status_reason
    DRAINING = "draining"
    OFFLINE = "offline"


class CircuitState(models.TextChoices):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class WorkerQuerySet(models.QuerySet):
    def alive(self) -> WorkerQuerySet:
        return self.filter(status=WorkerStatus.ONLINE)


class Worker(models.Model):
    worker_id = models.CharField(primary_key=True, max_length=255, help_text="Celery node name, e.g. celery@host.")
    hostname = models.CharField(max_length=255)
    queue = models.CharField(max_length=300, help_text="The worker's own Celery queue.")
    agent_name = models.CharField(max_length=255, blank=True)
    worker_type = models.CharField(max_length=32, choices=[(t.value, t.value) for t in WorkerType],
                                   default=WorkerType.VOICE_AGENT.value)
    serves = models.JSONField(default=list, blank=True, help_text="Job worker types this worker takes.")
    region = models.CharField(max_length=64, blank=True)
    version = models.CharField(max_length=64, blank=True)
    capacity = models.PositiveIntegerField(default=10, validators=[MinValueValidator(1), MaxValueValidator(1000)])
    weight = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1), MaxValueValidator(100)])
    status = models.CharField(max_length=16, choices=WorkerStatus.choices, default=WorkerStatus.ONLINE)
    status_reason = models.CharField(max_length=255, blank=True, default="", help_text="Why the worker is not online.")
    load = models.FloatField(default=0.0, help_text="0.0 idle … 1.0 saturated (CPU and sessions).")
    active_jobs = models.PositiveIntegerField(default=0)
    circuit_state = models.CharField(max_length=16, choices=CircuitState.choices, default=CircuitState.CLOSED)
    consecutive_failures = models.PositiveIntegerField(default=0)
    circuit_opened_at = models.DateTimeField(null=True, blank=True)
    health_check_port = models.PositiveIntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)

    objects = WorkerQuerySet.as_manager()

    class Meta:
        ordering = ["worker_id"]

    def __str__(self) -> str:
        return self.worker_id
