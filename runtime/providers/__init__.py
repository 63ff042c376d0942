"""Providers built from an agent's provider config: the pydantic models of
`runtime.provider_configs`, as `parse_provider_config` returns them."""
from __future__ import annotations

from runtime.provider_configs import (
    Endpoint,
    EspeakTTSConfig,
    NoProviderConfig,
    OpenAILLMConfig,
    OpenAISTTConfig,
    OpenAITTSConfig,
    PocketsphinxSTTConfig,
    ProviderConfig,
    ScriptedLLMConfig,
)

from .base import LLM, STT, TTS, LLMDelta, ProviderError, Transcript, Usage
from .espeak import EspeakTTS
from .openai import ClientOptions, OpenAILLM, OpenAISTT, OpenAITTS
from .pocketsphinx import PocketsphinxSTT
from .scripted import ScriptedLLM, ScriptRule

__all__ = ["LLM", "STT", "TTS", "Endpoint", "EspeakTTS", "LLMDelta", "PocketsphinxSTT", "ProviderError", "ScriptRule",
           "ScriptedLLM", "Transcript", "Usage", "build_llm", "build_stt", "build_tts"]


def _client(cfg: OpenAILLMConfig | OpenAISTTConfig | OpenAITTSConfig, endpoint: Endpoint | None) -> ClientOptions:
    """The config's client settings; a resolved `endpoint` replaces its base_url and key."""
    if endpoint is not None:
        return ClientOptions(endpoint=endpoint, timeout_s=cfg.timeout_s, max_retries=cfg.max_retries)
    return ClientOptions(base_url=str(cfg.base_url) if cfg.base_url else None, api_key_env=cfg.api_key_env,
                         timeout_s=cfg.timeout_s, max_retries=cfg.max_retries)


def _name(cfg: ProviderConfig) -> str:
    return str(getattr(cfg, "provider", type(cfg).__name__))


def build_llm(cfg: ProviderConfig, endpoint: Endpoint | None = None) -> LLM:
    if isinstance(cfg, OpenAILLMConfig):
        return OpenAILLM(model=cfg.model, temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                         parallel_tool_calls=cfg.parallel_tool_calls, client=_client(cfg, endpoint))
    if isinstance(cfg, ScriptedLLMConfig):
        return build_scripted_llm(cfg)
    raise ProviderError("llm", f"unknown LLM provider {_name(cfg)!r} for the pipeline runtime", kind="config")


def build_scripted_llm(cfg: ScriptedLLMConfig) -> ScriptedLLM:
    rules = [ScriptRule(keywords=tuple(r.keywords or ()), pattern=r.pattern, reply=r.reply, tool=r.tool,
                        arguments=r.arguments, error_reply=r.error_reply)
             for r in cfg.rules]
    return ScriptedLLM(rules=rules, fallback=cfg.fallback, token_delay_ms=cfg.token_delay_ms,
                       first_token_delay_ms=cfg.first_token_delay_ms)


def build_stt(cfg: ProviderConfig | None, endpoint: Endpoint | None = None) -> STT | None:
    if cfg is None or isinstance(cfg, NoProviderConfig):
        return None
    if isinstance(cfg, OpenAISTTConfig):
        return OpenAISTT(model=cfg.model, language=cfg.language, prompt=cfg.prompt, client=_client(cfg, endpoint))
    if isinstance(cfg, PocketsphinxSTTConfig):
        return PocketsphinxSTT(grammar=cfg.grammar, keyphrases=tuple(cfg.keyphrases or ()))
    raise ProviderError("stt", f"unknown STT provider {_name(cfg)!r}", kind="config")


def build_tts(cfg: ProviderConfig | None, endpoint: Endpoint | None = None) -> TTS | None:
    if cfg is None or isinstance(cfg, NoProviderConfig):
        return None
    if isinstance(cfg, OpenAITTSConfig):
        return OpenAITTS(model=cfg.model, voice=cfg.voice, speed=cfg.speed, instructions=cfg.instructions,
                         client=_client(cfg, endpoint))
    if isinstance(cfg, EspeakTTSConfig):
        return EspeakTTS(voice=cfg.voice, rate_wpm=cfg.rate, pitch=cfg.pitch, sample_rate=cfg.sample_rate)
    raise ProviderError("tts", f"unknown TTS provider {_name(cfg)!r}", kind="config")
