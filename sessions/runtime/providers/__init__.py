"""Providers chosen by name from an agent's config (dicts or the pydantic config models)."""
from __future__ import annotations

from typing import Any

from agents.provider_configs import Endpoint

from .base import LLM, STT, TTS, LLMDelta, ProviderError, Transcript, Usage
from .espeak import EspeakTTS
from .openai import ClientOptions, OpenAILLM, OpenAISTT, OpenAITTS
from .pocketsphinx import PocketsphinxSTT
from .scripted import ScriptedLLM, ScriptRule

__all__ = ["LLM", "STT", "TTS", "Endpoint", "EspeakTTS", "LLMDelta", "PocketsphinxSTT", "ProviderError", "ScriptRule",
           "ScriptedLLM", "Transcript", "Usage", "build_llm", "build_stt", "build_tts"]


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    if cfg is None:
        return default
    if isinstance(cfg, dict):
        v = cfg.get(key, default)
    else:
        v = getattr(cfg, key, default)
    return default if v is None else v


def _client(cfg: Any, endpoint: Endpoint | None) -> ClientOptions:
    """The config's client settings; a resolved `endpoint` replaces its base_url and key."""
    if endpoint is not None:
        return ClientOptions(endpoint=endpoint, timeout_s=float(_get(cfg, "timeout_s", 30.0)),
                             max_retries=int(_get(cfg, "max_retries", 2)))
    base_url = _get(cfg, "base_url")
    return ClientOptions(base_url=str(base_url) if base_url else None,
                         api_key_env=_get(cfg, "api_key_env"),
                         timeout_s=float(_get(cfg, "timeout_s", 30.0)),
                         max_retries=int(_get(cfg, "max_retries", 2)))


def provider_name(cfg: Any) -> str:
    if not cfg:
        return "none"
    return str(_get(cfg, "provider", "none"))


def build_llm(cfg: Any, endpoint: Endpoint | None = None) -> LLM:
    name = provider_name(cfg) if cfg else "openai"
    if name == "openai":
        return OpenAILLM(model=_get(cfg, "model", "gpt-4o-mini"), temperature=_get(cfg, "temperature", 0.7),
                         max_tokens=_get(cfg, "max_tokens"),
                         parallel_tool_calls=bool(_get(cfg, "parallel_tool_calls", True)), client=_client(cfg, endpoint))
    if name == "scripted":
        return build_scripted_llm(cfg)
    raise ProviderError("llm", f"unknown LLM provider {name!r} for the pipeline runtime", kind="config")


def build_scripted_llm(cfg: Any) -> ScriptedLLM:
    rules = [ScriptRule(keywords=tuple(_get(r, "keywords", ())), pattern=_get(r, "pattern"), reply=_get(r, "reply"),
                        tool=_get(r, "tool"), arguments=_get(r, "arguments"),
                        error_reply=_get(r, "error_reply", "Sorry, that did not work. {result}"))
             for r in _get(cfg, "rules", [])]
    return ScriptedLLM(rules=rules, fallback=_get(cfg, "fallback", "Sorry, I can only answer what my script covers."),
                       token_delay_ms=float(_get(cfg, "token_delay_ms", 0.0)),
                       first_token_delay_ms=float(_get(cfg, "first_token_delay_ms", 0.0)))


def build_stt(cfg: Any, endpoint: Endpoint | None = None) -> STT | None:
    name = provider_name(cfg)
    if name == "none":
        return None
    if name == "openai":
        return OpenAISTT(model=_get(cfg, "model", "whisper-1"), language=_get(cfg, "language"),
                         prompt=_get(cfg, "prompt"), client=_client(cfg, endpoint))
    if name == "pocketsphinx":
        return PocketsphinxSTT(grammar=_get(cfg, "grammar"), keyphrases=tuple(_get(cfg, "keyphrases", ())))
    raise ProviderError("stt", f"unknown STT provider {name!r}", kind="config")


def build_tts(cfg: Any, endpoint: Endpoint | None = None) -> TTS | None:
    name = provider_name(cfg)
    if name == "none":
        return None
    if name == "openai":
        return OpenAITTS(model=_get(cfg, "model", "gpt-4o-mini-tts"), voice=_get(cfg, "voice", "alloy"),
                         speed=float(_get(cfg, "speed", 1.0)), instructions=_get(cfg, "instructions"),
                         client=_client(cfg, endpoint))
    if name == "espeak":
        return EspeakTTS(voice=_get(cfg, "voice", "en-us"), rate_wpm=int(_get(cfg, "rate", 160)),
                         pitch=int(_get(cfg, "pitch", 50)), sample_rate=int(_get(cfg, "sample_rate", 24_000)))
    raise ProviderError("tts", f"unknown TTS provider {name!r}", kind="config")
