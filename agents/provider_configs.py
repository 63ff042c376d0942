"""Schemas for an agent's provider configs, one per provider name.

Pure pydantic (no Django): the model layer validates with these, and the session runtime
reads its settings through the same classes. API keys are never stored in a config: a
config names a stored credential (`api_key_credential`) or an allowlisted environment
variable (`api_key_env`); `agents.credentials` resolves them, and checks where they may go,
when a session is built.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

import re

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, model_validator

# a stored credential's name (agents.models.Credential), as configs reference it
CREDENTIAL_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")

_SECRET_FIELDS = {"api_key", "apikey", "secret", "token", "password", "api_secret"}


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @classmethod
    def _refuse_inline_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if str(key).lower() in _SECRET_FIELDS:
                    raise ValueError(
                        f"'{key}' must not be stored in the config; store the key as a named credential "
                        "and reference it with 'api_key_credential' (or name an allowlisted environment "
                        "variable with 'api_key_env')"
                    )
        return data


class _OpenAIBase(ProviderConfig):
    base_url: AnyHttpUrl | None = None
    api_key_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None
    api_key_credential: Annotated[str, Field(pattern=CREDENTIAL_NAME.pattern)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2

    @model_validator(mode="after")
    def _one_key_source(self) -> "_OpenAIBase":
        if self.api_key_env and self.api_key_credential:
            raise ValueError("give either 'api_key_credential' or 'api_key_env', not both")
        return self


class OpenAILLMConfig(_OpenAIBase):
    provider: Literal["openai"] = "openai"
    model: Annotated[str, Field(min_length=1, max_length=200)] = "gpt-4o-mini"
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.7
    max_tokens: Annotated[int, Field(ge=1, le=128_000)] | None = None
    vision: bool = False
    parallel_tool_calls: bool = True


class OpenAIRealtimeConfig(_OpenAIBase):
    provider: Literal["openai_realtime"] = "openai_realtime"
    model: Annotated[str, Field(min_length=1, max_length=200)] = "gpt-realtime"
    voice: Annotated[str, Field(min_length=1, max_length=50)] = "alloy"
    turn_detection: Literal["server_vad", "local"] = "server_vad"
    temperature: Annotated[float, Field(ge=0.6, le=1.2)] = 0.8
    instructions: Annotated[str, Field(max_length=10_000)] | None = None


class OpenAISTTConfig(_OpenAIBase):
    provider: Literal["openai"] = "openai"
    model: Annotated[str, Field(min_length=1, max_length=200)] = "whisper-1"
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")] | None = None
    prompt: Annotated[str, Field(max_length=2000)] | None = None


class OpenAITTSConfig(_OpenAIBase):
    provider: Literal["openai"] = "openai"
    model: Annotated[str, Field(min_length=1, max_length=200)] = "gpt-4o-mini-tts"
    voice: Annotated[str, Field(min_length=1, max_length=50)] = "alloy"
    speed: Annotated[float, Field(ge=0.25, le=4.0)] = 1.0
    instructions: Annotated[str, Field(max_length=2000)] | None = None


class NoProviderConfig(ProviderConfig):
    """A text agent has no STT/TTS: `{}` or `{"provider": "none"}`."""

    provider: Literal["none"] = "none"


class WebRTCVADConfig(ProviderConfig):
    provider: Literal["webrtcvad"] = "webrtcvad"
    enabled: bool = True
    # 0.0 = least eager to call audio speech, 1.0 = most; mapped onto webrtcvad modes 0..3
    sensitivity: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    frame_ms: Literal[10, 20, 30] = 20
    min_speech_ms: Annotated[int, Field(ge=0, le=10_000)] = 100
    min_silence_ms: Annotated[int, Field(ge=0, le=10_000)] = 300
    padding_ms: Annotated[int, Field(ge=0, le=2_000)] = 200
    # audio-in processing before VAD (livekit.rtc.AudioProcessingModule)
    noise_suppression: bool = False
    echo_cancellation: bool = False


class TurnConfig(ProviderConfig):
    min_endpointing_delay_ms: Annotated[int, Field(ge=0, le=10_000)] = 500
    max_endpointing_delay_ms: Annotated[int, Field(ge=0, le=60_000)] = 6_000
    min_interruption_duration_ms: Annotated[int, Field(ge=0, le=10_000)] = 500
    allow_interruptions: bool = True
    max_tool_steps: Annotated[int, Field(ge=0, le=50)] = 5
    # a session ends (and frees its worker slot) after this long in all, or after this long
    # without user speech or text; 0 turns a limit off
    max_duration_s: Annotated[int, Field(ge=0, le=86_400)] = 7_200
    idle_timeout_s: Annotated[int, Field(ge=0, le=86_400)] = 300

    def model_post_init(self, __context: Any) -> None:
        if self.max_endpointing_delay_ms < self.min_endpointing_delay_ms:
            raise ValueError("max_endpointing_delay_ms must be at least min_endpointing_delay_ms")


class RecordingConfig(ProviderConfig):
    """Call recording: off by default; both directions mixed to one 16 kHz mono WAV file."""

    enabled: bool = False
    format: Literal["wav"] = "wav"


LLM_PROVIDERS: dict[str, type[ProviderConfig]] = {"openai": OpenAILLMConfig, "openai_realtime": OpenAIRealtimeConfig}
STT_PROVIDERS: dict[str, type[ProviderConfig]] = {"openai": OpenAISTTConfig, "none": NoProviderConfig}
TTS_PROVIDERS: dict[str, type[ProviderConfig]] = {"openai": OpenAITTSConfig, "none": NoProviderConfig}
VAD_PROVIDERS: dict[str, type[ProviderConfig]] = {"webrtcvad": WebRTCVADConfig, "none": NoProviderConfig}

PROVIDERS_BY_KIND = {"llm": LLM_PROVIDERS, "stt": STT_PROVIDERS, "tts": TTS_PROVIDERS, "vad": VAD_PROVIDERS}
DEFAULT_PROVIDER = {"llm": "openai", "stt": "none", "tts": "none", "vad": "webrtcvad"}


class ProviderConfigError(ValueError):
    """Carries a list of human-readable messages, each naming the offending key."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def parse_provider_config(kind: str, config: Any) -> ProviderConfig:
    """Validate one provider config (`kind` is llm/stt/tts/vad) and return the typed model."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ProviderConfigError(["must be a JSON object"])
    providers = PROVIDERS_BY_KIND[kind]
    name = config.get("provider", DEFAULT_PROVIDER[kind])
    schema = providers.get(name) if isinstance(name, str) else None
    if schema is None:
        raise ProviderConfigError([f"provider: unknown {kind} provider {name!r}; choose one of {', '.join(sorted(providers))}"])
    try:
        ProviderConfig._refuse_inline_secrets(config)
        return schema.model_validate({**config, "provider": name})
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            raise ProviderConfigError(
                [f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()]
            ) from None
        raise ProviderConfigError([str(exc)]) from None


def parse_turn_config(config: Any) -> TurnConfig:
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ProviderConfigError(["must be a JSON object"])
    try:
        return TurnConfig.model_validate(config)
    except ValidationError as exc:
        raise ProviderConfigError(
            [f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()]
        ) from None
    except ValueError as exc:
        raise ProviderConfigError([str(exc)]) from None


def parse_recording_config(config: Any) -> RecordingConfig:
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ProviderConfigError(["must be a JSON object"])
    try:
        return RecordingConfig.model_validate(config)
    except ValidationError as exc:
        raise ProviderConfigError(
            [f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()]
        ) from None
