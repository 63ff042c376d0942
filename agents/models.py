from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import models

from runtime.provider_configs import (
    ProviderConfigError,
    parse_provider_config,
    parse_recording_config,
    parse_turn_config,
    scripted_tool_errors,
)
from agents.provider_references import reference_problems
from agents.tools.egress import Secret
from agents.tools.secrets import decrypt_secret, encrypt_secret
from agents.validators import (
    HOST_PATTERN,
    validate_agent_id,
    validate_credential_name,
    validate_openai_function_schema,
    validate_tool_name,
)

# The parts of an agent that make up its configuration; a change to any makes a new version.
CONFIG_FIELDS = ("instructions", "tools", "llm_config", "stt_config", "tts_config", "vad_config", "turn_config",
                 "recording_config", "metadata")
PROVIDER_FIELDS = {"llm_config": "llm", "stt_config": "stt", "tts_config": "tts", "vad_config": "vad"}


class AgentState(models.TextChoices):
    CREATED = "created"
    CONFIGURED = "configured"
    ACTIVE = "active"
    INACTIVE = "inactive"
    DESTROYED = "destroyed"


class AgentQuerySet(models.QuerySet):
    def live(self) -> AgentQuerySet:
        return self.exclude(state=AgentState.DESTROYED)

    def active(self) -> AgentQuerySet:
        return self.filter(state=AgentState.ACTIVE)


class Agent(models.Model):
    agent_id = models.CharField(max_length=255, unique=True, validators=[validate_agent_id])
    instructions = models.TextField(validators=[MaxLengthValidator(10_000)])
    tools = models.JSONField(default=list, blank=True, help_text="Names of registered tools.")
    llm_config = models.JSONField(default=dict, blank=True)
    stt_config = models.JSONField(default=dict, blank=True)
    tts_config = models.JSONField(default=dict, blank=True)
    vad_config = models.JSONField(default=dict, blank=True)
    turn_config = models.JSONField(default=dict, blank=True, help_text="Endpointing, interruptions, max_tool_steps.")
    recording_config = models.JSONField(default=dict, blank=True,
                                        help_text='Call recording, off by default: {"enabled": true} records each call.')
    metadata = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=AgentState.choices, default=AgentState.CREATED, editable=False)
    version = models.PositiveIntegerField(default=0, editable=False)
    metrics = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["agent_id"]

    def __str__(self) -> str:
        return self.agent_id

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if not (self.instructions or "").strip():
            errors.setdefault("instructions", []).append("Instructions are required.")
        for field, kind in PROVIDER_FIELDS.items():
            try:
                cfg = parse_provider_config(kind, getattr(self, field))
            except ProviderConfigError as exc:
                errors.setdefault(field, []).extend(exc.messages)
                continue
            problems = reference_problems(cfg, credential_hosts=_credential_hosts(cfg))
            if problems:
                errors.setdefault(field, []).extend(problems)
        if "llm_config" not in errors and (scripted := scripted_tool_errors(self.llm_config, self.tools)):
            errors["llm_config"] = scripted
        try:
            parse_turn_config(self.turn_config)
        except ProviderConfigError as exc:
            errors.setdefault("turn_config", []).extend(exc.messages)
        try:
            parse_recording_config(self.recording_config)
        except ProviderConfigError as exc:
            errors.setdefault("recording_config", []).extend(exc.messages)
        if not isinstance(self.metadata, dict):
            errors.setdefault("metadata", []).append("Metadata must be a JSON object.")
        tool_errors = unknown_tool_errors(self.tools)
        if tool_errors:
            errors.setdefault("tools", []).extend(tool_errors)
        if self.created_at and self.updated_at and self.updated_at < self.created_at:
            errors.setdefault("updated_at", []).append("updated_at cannot be before created_at.")
        if errors:
            raise ValidationError(errors)

    def config_snapshot(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in CONFIG_FIELDS}


def _credential_hosts(cfg: Any) -> dict[str, tuple[str, ...]]:
    name = getattr(cfg, "api_key_credential", None)
    if not name:
        return {}
    return {n: tuple(h) for n, h in Credential.objects.filter(name=name).values_list("name", "allowed_hosts")}


def unknown_tool_errors(tools: Any) -> list[str]:
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
        return ["Tools must be a list of tool names."]
    if len(set(tools)) != len(tools):
        return ["Each tool may be listed once."]
    known = set(Tool.objects.filter(name__in=tools, enabled=True).values_list("name", flat=True))
    missing = [t for t in tools if t not in known]
    if missing:
        return [f"Unknown or disabled tool(s): {', '.join(missing)}. Register them first."]
    return []


class AgentVersion(models.Model):
    """An immutable snapshot of an agent's configuration; sessions record which one they ran."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    config = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=255, blank=True, help_text="User or API key that made the change.")

    class Meta:
        ordering = ["agent", "-version"]
        constraints = [models.UniqueConstraint(fields=["agent", "version"], name="agent_version_unique")]

    def __str__(self) -> str:
        return f"{self.agent.agent_id} v{self.version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValidationError("Agent versions are immutable.")
        super().save(*args, **kwargs)


class ToolKind(models.TextChoices):
    PYTHON = "python"
    HTTP = "http"


class ToolExecution(models.TextChoices):
    INLINE = "inline", "inline (in the session's event loop)"
    CELERY = "celery", "celery (on the tools queue)"


class Tool(models.Model):
    name = models.CharField(max_length=64, unique=True, validators=[validate_tool_name])
    description = models.TextField(validators=[MaxLengthValidator(500)])
    kind = models.CharField(max_length=16, choices=ToolKind.choices, default=ToolKind.PYTHON)
    module = models.CharField(max_length=255, blank=True)
    function = models.CharField(max_length=255, blank=True)
    arity = models.PositiveIntegerField(default=0)
    parameters = models.JSONField(default=list, blank=True, help_text="Parameter definitions (name, type, required).")
    return_type = models.CharField(max_length=100, blank=True, default="str")
    timeout_ms = models.PositiveIntegerField(default=30_000, validators=[MinValueValidator(1), MaxValueValidator(300_000)])
    execution = models.CharField(max_length=16, choices=ToolExecution.choices, default=ToolExecution.INLINE)
    schema = models.JSONField(help_text="OpenAI function schema: {name, description, parameters}.")
    http_url = models.URLField(max_length=2000, blank=True)
    http_method = models.CharField(max_length=8, blank=True, default="POST", choices=[(m, m) for m in ("GET", "POST", "PUT", "PATCH", "DELETE")])
    http_headers = models.JSONField(default=dict, blank=True)
    http_retries = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(10)])
    enabled = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True)
    calls = models.PositiveBigIntegerField(default=0, editable=False)
    errors = models.PositiveBigIntegerField(default=0, editable=False)
    timeouts = models.PositiveBigIntegerField(default=0, editable=False)
    total_latency_ms = models.FloatField(default=0.0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if not (self.description or "").strip():
            errors.setdefault("description", []).append("A description is required: the model reads it to decide when to call the tool.")
        try:
            validate_openai_function_schema(self.schema)
        except ValidationError as exc:
            errors.setdefault("schema", []).extend(exc.messages)
        else:
            fn = self.schema.get("function", self.schema)
            if fn.get("name") != self.name:
                errors.setdefault("schema", []).append(f"schema.name must equal the tool name {self.name!r}.")
        if self.kind == ToolKind.HTTP and not self.http_url:
            errors.setdefault("http_url", []).append("HTTP tools need a URL.")
        if self.kind == ToolKind.PYTHON and self.pk is None and not (self.module and self.function):
            errors.setdefault("module", []).append("Python tools need a module and a function.")
        if not isinstance(self.http_headers, dict):
            errors.setdefault("http_headers", []).append("Headers must be a JSON object.")
        if errors:
            raise ValidationError(errors)

    @property
    def average_latency_ms(self) -> float:
        return self.total_latency_ms / self.calls if self.calls else 0.0


class Credential(models.Model):
    """A secret the server holds for agents and tools, referenced by name.

    The value is encrypted at rest (agents.tools.secrets) and written only in the admin;
    nothing shows it back. It is sent only to `allowed_hosts` (exact names, or
    `*.example.com` for subdomains), checked where each request is built.
    """

    name = models.CharField(max_length=64, unique=True, validators=[validate_credential_name],
                            help_text="What configs reference: lower case, digits, '.', '_', '-'.")
    value_encrypted = models.TextField(editable=False)
    allowed_hosts = models.JSONField(default=list, help_text="Host names this credential may be sent to.")
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        problems = allowed_host_problems(self.allowed_hosts)
        if problems:  # not keyed by field: the admin form edits the hosts as its own `hosts` field
            raise ValidationError(problems)
        if not self.value_encrypted:
            raise ValidationError("A credential needs a value.")

    def set_value(self, value: str) -> None:
        self.value_encrypted = encrypt_secret(value)

    def secret(self) -> Secret:
        return Secret(label=f"credential {self.name!r}", value=decrypt_secret(self.value_encrypted),
                      hosts=tuple(self.allowed_hosts))


def allowed_host_problems(hosts: Any) -> list[str]:
    if not isinstance(hosts, list) or not hosts:
        return ["List at least one host name the credential may be sent to."]
    return [f"{host!r} is not a host name (or *.domain pattern)." for host in hosts
            if not isinstance(host, str) or not HOST_PATTERN.match(host)]
