"""The demo agent's configuration, for each provider set `load_demo` can choose.

`local` needs no service and no key: pocketsphinx listens with a grammar of the demo's
questions, the scripted model answers them (calling `get_weather` for the weather) and
espeak-ng speaks. `openai` uses OpenAI — or any OpenAI-compatible server named by
OPENAI_BASE_URL — for all three. `openai-llm` uses such a server for the LLM only (a
local Ollama or vLLM serves chat completions but no speech) with local speech around it.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

PROVIDER_SETS = ("local", "openai", "openai-llm")

INSTRUCTIONS = (
    "You are a friendly voice assistant for a demo of the control plane. Keep answers short: "
    "one or two sentences, spoken style. Use the get_weather tool when asked about weather."
)

# What the local demo understands (the README and the playground's fake microphone use these).
CITIES = ("paris", "london", "berlin", "tokyo", "lisbon", "madrid", "rome", "new york")
GRAMMAR = f"""#JSGF V1.0;
grammar demo;
public <utterance> = <weather> | <greeting> | <help> | <thanks> | <goodbye>;
<weather> = [what is | what's | how is] the weather [like] in <city> [today];
<city> = {" | ".join(CITIES)};
<greeting> = hello | hi | good morning;
<help> = what can you do;
<thanks> = thank you | thanks;
<goodbye> = goodbye | bye;
"""

RULES: list[dict[str, Any]] = [
    {"pattern": r"\b(?:weather|forecast|temperature)\b.*?\b(?:in|for|at)\s+(?P<city>[a-z][a-z .'-]*?)"
                r"(?:,?\s+(?:today|now|right now|please))?\s*[?.!]*$",
     "tool": "get_weather", "arguments": {"city": "{city!t}"}, "reply": "{result}",
     "error_reply": "Sorry, I could not get the weather for {city!t}."},
    {"keywords": ["weather", "forecast"], "reply": "Which city? Ask me, for example: what's the weather in Paris?"},
    {"keywords": ["hello", "hi", "hey", "good morning", "good evening"],
     "reply": "Hello! Ask me about the weather in any city."},
    {"keywords": ["what can you do", "help"],
     "reply": "I can tell you the weather. Try: what's the weather in Paris?"},
    {"keywords": ["thank you", "thanks"], "reply": "You're welcome!"},
    {"keywords": ["goodbye", "bye"], "reply": "Goodbye!"},
]
FALLBACK = "I'm a scripted demo agent: ask me about the weather in a city, for example Paris."

_SPEECH_LOCAL = {
    "stt_config": {"provider": "pocketsphinx", "grammar": GRAMMAR},
    "tts_config": {"provider": "espeak", "voice": "en-us", "rate": 160, "pitch": 50},
}
_COMMON: dict[str, Any] = {
    "tools": ["get_weather"],
    "vad_config": {"provider": "webrtcvad", "sensitivity": 0.5, "frame_ms": 20},
    "turn_config": {"max_tool_steps": 5},
    "metadata": {"demo": True},
}


def default_provider_set(environ: Mapping[str, str] = os.environ) -> str:
    """`openai` when the environment names an OpenAI(-compatible) server or key, else `local`."""
    if environ.get("OPENAI_API_KEY") or environ.get("OPENAI_BASE_URL"):
        return "openai"
    return "local"


def demo_config(providers: str, *, llm_model: str = "gpt-4o-mini") -> dict[str, Any]:
    """The full config (instructions included) for one of PROVIDER_SETS."""
    if providers not in PROVIDER_SETS:
        raise ValueError(f"providers: choose one of {', '.join(PROVIDER_SETS)}")
    openai_llm = {"provider": "openai", "model": llm_model, "temperature": 0.7}
    if providers == "local":
        speech: dict[str, Any] = dict(_SPEECH_LOCAL)
        llm: dict[str, Any] = {"provider": "scripted", "rules": RULES, "fallback": FALLBACK, "token_delay_ms": 15}
    elif providers == "openai-llm":
        # a general model hears open dictation, not the scripted questions' grammar
        speech = {"stt_config": {"provider": "pocketsphinx"}, "tts_config": _SPEECH_LOCAL["tts_config"]}
        llm = openai_llm
    else:
        speech = {"stt_config": {"provider": "openai", "model": "whisper-1"},
                  "tts_config": {"provider": "openai", "model": "gpt-4o-mini-tts", "voice": "alloy"}}
        llm = openai_llm
    return {"instructions": INSTRUCTIONS, **_COMMON, "llm_config": llm, **speech}
