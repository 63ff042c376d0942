"""Schemas for an agent's provider configs, one per provider name.

Pure pydantic (no Django): the model layer validates with these, and the session runtime
reads its settings through the same classes. API keys are never stored in a config: a
config names a stored credential (`api_key_credential`) or an allowlisted environment
variable (`api_key_env`); `agents.credentials` resolves them, and checks where they may go,
when a session is built.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runtime import pocketsphinx_checks as sphinx
from runtime.script_templates import template_fields

# a stored credential's name (agents.models.Credential), as configs reference it
CREDENTIAL_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")

_SECRET_FIELDS = {"api_key", "apikey", "secret", "token", "password", "api_secret"}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a provider sends its requests and the key it sends, as the control plane
    resolved them from a config (`agents.provider_endpoints`; the runtime reads no secret
    itself). `refused` says why no request may be made; the provider raises it as a config
    error before anything is sent."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    refused: str | None = None


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


# -- local providers (no service, no key): pocketsphinx STT, espeak-ng TTS, the scripted LLM --------

class PocketsphinxSTTConfig(ProviderConfig):
    """Open dictation with the bundled US-English model, a JSGF `grammar`, or `keyphrases`
    (a menu: each utterance is heard as the closest phrase)."""

    provider: Literal["pocketsphinx"] = "pocketsphinx"
    grammar: Annotated[str, Field(min_length=1, max_length=20_000)] | None = None
    keyphrases: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]],
                          Field(min_length=1, max_length=200)] | None = None

    @field_validator("grammar")
    @classmethod
    def _grammar_usable(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.lstrip().startswith("#JSGF"):
            raise ValueError("must be a JSGF grammar starting with a '#JSGF V1.0;' header")
        problems = sphinx.grammar_problems(v)
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @field_validator("keyphrases")
    @classmethod
    def _keyphrases_known(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        phrases = [" ".join(p.lower().split()) for p in v]
        unknown = sphinx.unknown_words([w for p in phrases for w in p.split()])
        if unknown:
            raise ValueError(f"words not in the pronunciation dictionary: {', '.join(unknown)}")
        return phrases

    @model_validator(mode="after")
    def _one_mode(self) -> "PocketsphinxSTTConfig":
        if self.grammar is not None and self.keyphrases is not None:
            raise ValueError("grammar, keyphrases: choose one of them, not both")
        return self


class EspeakTTSConfig(ProviderConfig):
    provider: Literal["espeak"] = "espeak"
    voice: Annotated[str, Field(pattern=r"^[A-Za-z0-9_+-]{1,40}$")] = "en-us"  # `espeak-ng --voices`
    rate: Annotated[int, Field(ge=80, le=450)] = 160  # words per minute
    pitch: Annotated[int, Field(ge=0, le=99)] = 50
    sample_rate: Literal[8000, 16000, 24000, 48000] = 24_000  # what the session plays


class ScriptedRuleConfig(ProviderConfig):
    """Match the user's turn (any of `keywords`, or the regex `pattern`) → `reply`, or `tool`
    with `arguments` from the pattern's named groups, then `reply` using `{result}`."""

    keywords: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]],
                        Field(min_length=1, max_length=100)] | None = None
    pattern: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    reply: Annotated[str, Field(max_length=2000)] | None = None
    tool: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")] | None = None
    arguments: dict[Annotated[str, Field(min_length=1, max_length=64)], Annotated[str, Field(max_length=500)]] | None = None
    error_reply: Annotated[str, Field(max_length=2000)] = "Sorry, that did not work. {result}"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "ScriptedRuleConfig":
        if (self.keywords is None) == (self.pattern is None):
            raise ValueError("keywords, pattern: give exactly one of them")
        if self.reply is None and self.tool is None:
            raise ValueError("reply: a rule needs a reply, a tool, or both")
        if self.tool is None and self.arguments is not None:
            raise ValueError("arguments: only a rule with a tool takes arguments")
        groups = set(re.compile(self.pattern).groupindex) if self.pattern else set()
        after_tool = groups | {"result"} if self.tool else groups
        checks = [("reply", self.reply, after_tool), ("error_reply", self.error_reply if self.tool else None, after_tool),
                  *((f"arguments.{k}", t, groups) for k, t in (self.arguments or {}).items())]
        for name, template, allowed in checks:
            if template is None:
                continue
            try:
                unknown = template_fields(template) - allowed
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
            if unknown:
                known = ", ".join(sorted(allowed)) or "none"
                raise ValueError(f"{name}: unknown field(s) {', '.join(sorted(unknown))}; "
                                 f"available: {known} (named groups of the pattern, and result after a tool)")
        return self


class ScriptedLLMConfig(ProviderConfig):
    provider: Literal["scripted"] = "scripted"
    rules: Annotated[list[ScriptedRuleConfig], Field(max_length=500)] = Field(default_factory=list)
    fallback: Annotated[str, Field(min_length=1, max_length=2000)] = "Sorry, I can only answer what my script covers."
    token_delay_ms: Annotated[float, Field(ge=0, le=1000)] = 0.0  # between streamed tokens
    first_token_delay_ms: Annotated[float, Field(ge=0, le=10_000)] = 0.0  # a model's time to first token


def scripted_tool_errors(llm_config: Any, tools: Any) -> list[str]:
    """A scripted LLM's rules may only call the agent's own tools (checked with the agent's `tools`)."""
    if not isinstance(llm_config, dict) or llm_config.get("provider") != "scripted":
        return []
    try:
        cfg = ScriptedLLMConfig.model_validate(llm_config)
    except ValidationError:
        return []  # reported by the schema itself
    have = set(tools) if isinstance(tools, list) else set()
    return [f"rules.{i}.tool: {rule.tool!r} is not one of this agent's tools ({', '.join(sorted(have)) or 'none'})"
            for i, rule in enumerate(cfg.rules) if rule.tool is not None and rule.tool not in have]


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


LLM_PROVIDERS: dict[str, type[ProviderConfig]] = {"openai": OpenAILLMConfig, "openai_realtime": OpenAIRealtimeConfig,
                                                  "scripted": ScriptedLLMConfig}
STT_PROVIDERS: dict[str, type[ProviderConfig]] = {"openai": OpenAISTTConfig, "pocketsphinx": PocketsphinxSTTConfig,
                                                  "none": NoProviderConfig}
TTS_PROVIDERS: dict[str, type[ProviderConfig]] = {"openai": OpenAITTSConfig, "espeak": EspeakTTSConfig,
                                                  "none": NoProviderConfig}
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
