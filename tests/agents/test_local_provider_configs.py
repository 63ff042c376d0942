"""Config schemas of the local providers: every bad value gets a message naming its field."""
from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from agents.demo_config import GRAMMAR, demo_config
from agents.models import Agent
from runtime.provider_configs import (
    EspeakTTSConfig,
    PocketsphinxSTTConfig,
    ProviderConfigError,
    ScriptedLLMConfig,
    parse_provider_config,
)
from agents.tools.sync import tool_sync


def messages(kind: str, config: dict[str, Any]) -> list[str]:
    with pytest.raises(ProviderConfigError) as err:
        parse_provider_config(kind, config)
    return err.value.messages


@pytest.mark.parametrize(("config", "field", "fragment"), [
    ({"grammar": "public <a> = hello;"}, "grammar", "#JSGF"),
    ({"grammar": "#JSGF V1.0;\ngrammar g;\npublic <a> = hello zzqxw;\n"}, "grammar", "'zzqxw' is missing in the dictionary"),
    ({"grammar": "#JSGF V1.0;\ngrammar g;\npublic <a> = (hello;\n"}, "grammar", "syntax error"),
    ({"grammar": "#JSGF V1.0;\ngrammar g;\npublic <a> = hello <b>;\n"}, "grammar", "Undefined rule"),
    ({"grammar": ""}, "grammar", "at least 1"),
    ({"keyphrases": []}, "keyphrases", "at least 1"),
    ({"keyphrases": ["weather in parisx"]}, "keyphrases", "parisx"),
    ({"keyphrases": "hello"}, "keyphrases", "list"),
    ({"language": "fr"}, "language", "Extra inputs"),
])
def test_pocketsphinx_errors_name_the_field(config: dict[str, Any], field: str, fragment: str) -> None:
    found = messages("stt", {"provider": "pocketsphinx", **config})
    assert any(m.startswith(field) and fragment in m for m in found), found


def test_pocketsphinx_takes_a_grammar_or_keyphrases_not_both() -> None:
    found = messages("stt", {"provider": "pocketsphinx", "grammar": GRAMMAR, "keyphrases": ["hello"]})
    assert any("grammar, keyphrases" in m for m in found), found


def test_pocketsphinx_accepts_dictation_a_grammar_or_normalised_keyphrases() -> None:
    assert isinstance(parse_provider_config("stt", {"provider": "pocketsphinx"}), PocketsphinxSTTConfig)
    assert parse_provider_config("stt", {"provider": "pocketsphinx", "grammar": GRAMMAR}).grammar == GRAMMAR  # type: ignore[attr-defined]
    cfg = parse_provider_config("stt", {"provider": "pocketsphinx", "keyphrases": ["  Weather in   PARIS "]})
    assert cfg.keyphrases == ["weather in paris"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("config", "field"), [
    ({"voice": "en us; rm -rf /"}, "voice"),
    ({"rate": 10}, "rate"),
    ({"rate": 1000}, "rate"),
    ({"pitch": 120}, "pitch"),
    ({"sample_rate": 22050}, "sample_rate"),
    ({"speed": 1.0}, "speed"),
])
def test_espeak_errors_name_the_field(config: dict[str, Any], field: str) -> None:
    found = messages("tts", {"provider": "espeak", **config})
    assert any(m.startswith(field + ":") for m in found), found


def test_espeak_defaults() -> None:
    cfg = parse_provider_config("tts", {"provider": "espeak"})
    assert isinstance(cfg, EspeakTTSConfig)
    assert (cfg.voice, cfg.rate, cfg.pitch, cfg.sample_rate) == ("en-us", 160, 50, 24_000)


@pytest.mark.parametrize(("rule", "field", "fragment"), [
    ({"pattern": "(?P<city>[a-z]+", "reply": "x"}, "rules.0.pattern", "not a valid regular expression"),
    ({"reply": "x"}, "rules.0", "keywords, pattern"),
    ({"keywords": ["a"], "pattern": "a", "reply": "x"}, "rules.0", "keywords, pattern"),
    ({"keywords": ["a"]}, "rules.0", "reply"),
    ({"keywords": ["a"], "reply": "{city}"}, "rules.0", "reply: unknown field(s) city"),
    ({"pattern": "in (?P<city>\\w+)", "reply": "{result}"}, "rules.0", "reply: unknown field(s) result"),
    ({"pattern": "in (?P<city>\\w+)", "tool": "get_weather", "arguments": {"city": "{town}"}}, "rules.0",
     "arguments.city: unknown field(s) town"),
    ({"keywords": ["a"], "reply": "x", "arguments": {"a": "b"}}, "rules.0", "arguments"),
    ({"keywords": ["a"], "reply": "{x!z}"}, "rules.0", "unknown conversion"),
    ({"keywords": ["a"], "reply": "{"}, "rules.0", "reply"),
    ({"keywords": ["a"], "tool": "not a name"}, "rules.0.tool", "pattern"),
    ({"keywords": [], "reply": "x"}, "rules.0.keywords", "at least 1"),
    ({"keywords": ["a"], "reply": "x", "then": "y"}, "rules.0.then", "Extra inputs"),
])
def test_scripted_rule_errors_name_the_field(rule: dict[str, Any], field: str, fragment: str) -> None:
    found = messages("llm", {"provider": "scripted", "rules": [rule]})
    assert any(m.startswith(field) and fragment in m for m in found), found


@pytest.mark.parametrize(("config", "field"), [
    ({"fallback": ""}, "fallback"),
    ({"token_delay_ms": -1}, "token_delay_ms"),
    ({"first_token_delay_ms": 20_000}, "first_token_delay_ms"),
    ({"rules": {"pattern": "x"}}, "rules"),
])
def test_scripted_errors_name_the_field(config: dict[str, Any], field: str) -> None:
    found = messages("llm", {"provider": "scripted", **config})
    assert any(m.startswith(field + ":") for m in found), found


def test_a_tool_rule_may_use_groups_and_result_in_its_reply() -> None:
    cfg = parse_provider_config("llm", {"provider": "scripted", "rules": [
        {"pattern": r"weather in (?P<city>\w+)", "tool": "get_weather", "arguments": {"city": "{city!t}"},
         "reply": "In {city!t}: {result}"}]})
    assert isinstance(cfg, ScriptedLLMConfig) and cfg.rules[0].tool == "get_weather"


@pytest.mark.parametrize("providers", ["local", "openai", "openai-llm"])
def test_every_demo_config_validates(providers: str) -> None:
    config = demo_config(providers)
    for kind in ("llm", "stt", "tts", "vad"):
        parse_provider_config(kind, config[f"{kind}_config"])


@pytest.mark.django_db
def test_an_agent_whose_scripted_rule_calls_a_tool_it_lacks_is_refused_naming_the_rule() -> None:
    tool_sync()
    llm = {"provider": "scripted", "rules": [{"keywords": ["hi"], "reply": "Hi!"},
                                             {"pattern": r"in (?P<city>\w+)", "tool": "get_weather", "reply": "{result}"}]}
    agent = Agent(agent_id="menu", instructions="Answer.", tools=[], llm_config=llm)
    with pytest.raises(ValidationError) as err:
        agent.full_clean()
    assert err.value.message_dict["llm_config"] == ["rules.1.tool: 'get_weather' is not one of this agent's tools (none)"]
    Agent(agent_id="menu", instructions="Answer.", tools=["get_weather"], llm_config=llm).full_clean()
