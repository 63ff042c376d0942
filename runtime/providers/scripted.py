"""A scripted, deterministic "model" for demos, load tests and CI of agent flows.

Ordered rules match the user's last turn (any of some keywords, or a regex); the first
that matches either replies, or calls a tool with arguments taken from the match's named
groups and, once the tool's result is in the history, replies from a template that can use
`{result}`. Nothing matches → the fallback reply. Replies stream token by token with usage
counted, like a real model, so the rest of the pipeline cannot tell the difference —
the dashboard can: ScriptedLLM declares `scripted = True`.

Templates use `str.format` fields: the pattern's named groups, `{result}` after a tool,
and the conversion `!t` for Title Case (`{city!t}`: "paris" → "Paris").
"""
from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.script_templates import render
from runtime.tool_types import ToolCall

from .base import LLMDelta, ProviderError, Usage

SCRIPTED_MODEL = "scripted"
_TOKEN = re.compile(r"\s*\S+")
_COUNTED = re.compile(r"\w+|[^\w\s]")
_call_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class ScriptRule:
    """One rule. Exactly one of `keywords` (any of them, as whole words) or `pattern`."""

    keywords: Sequence[str] = ()
    pattern: str | None = None
    reply: str | None = None  # the answer; after a tool: the answer to its result
    tool: str | None = None
    arguments: Mapping[str, str] | None = None  # templates; default: the pattern's named groups
    error_reply: str = "Sorry, that did not work. {result}"
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pattern is not None:
            regex = re.compile(self.pattern, re.IGNORECASE)
        else:
            words = "|".join(re.escape(k.strip()) for k in self.keywords if k.strip())
            regex = re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE)
        object.__setattr__(self, "_regex", regex)

    def match(self, text: str) -> dict[str, str] | None:
        m = self._regex.search(text)
        if m is None:
            return None
        return {k: (v or "").strip() for k, v in m.groupdict().items()}

    def tool_arguments(self, groups: Mapping[str, str]) -> dict[str, str]:
        if self.arguments is None:
            return dict(groups)
        return {name: render(t, groups) for name, t in self.arguments.items()}


class ScriptedLLM:
    """Implements the LLM protocol (providers.base.LLM) without a model."""

    model = SCRIPTED_MODEL
    scripted = True

    def __init__(self, *, rules: Sequence[ScriptRule] = (), fallback: str = "Sorry, I can only answer what my script covers.",
                 token_delay_ms: float = 0.0, first_token_delay_ms: float = 0.0) -> None:
        self.rules = list(rules)
        self.fallback = fallback
        self.token_delay_s = token_delay_ms / 1000
        self.first_token_delay_s = first_token_delay_ms / 1000

    async def chat(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                   tool_choice: str | None = None) -> AsyncIterator[LLMDelta]:
        offered = {t.get("function", {}).get("name") for t in tools or ()}
        user_text = _last_user_text(messages)
        answer = _answer_to_tool(self.rules, messages, user_text)
        if answer is None:
            rule, groups = self._first_match(user_text)
            if rule is None or (rule.tool is not None and tool_choice == "none"):
                answer = self.fallback
            elif rule.tool is not None:
                if rule.tool not in offered:
                    raise ProviderError("llm", f"scripted rules.{self.rules.index(rule)} calls tool {rule.tool!r}, "
                                        "which this agent does not have", kind="config")
                await self._pause(self.first_token_delay_s)
                args = json.dumps(_render(rule.tool_arguments, groups))
                call_id = f"call_scripted_{self.rules.index(rule)}_{next(_call_ids)}"
                yield LLMDelta("tool_calls", tool_calls=[ToolCall(call_id, rule.tool, args)])
                yield LLMDelta("usage", usage=_usage(messages, args))
                return
            else:
                answer = _render(lambda g: render(rule.reply or "", g), groups)
        async for delta in self._stream(answer):
            yield delta
        yield LLMDelta("usage", usage=_usage(messages, answer))

    def _first_match(self, text: str) -> tuple[ScriptRule | None, dict[str, str]]:
        for rule in self.rules:
            groups = rule.match(text)
            if groups is not None:
                return rule, groups
        return None, {}

    async def _stream(self, text: str) -> AsyncIterator[LLMDelta]:
        await self._pause(self.first_token_delay_s)
        for i, m in enumerate(_TOKEN.finditer(text)):
            if i:
                await self._pause(self.token_delay_s)
            yield LLMDelta("text", text=m.group())

    @staticmethod
    async def _pause(seconds: float) -> None:
        await asyncio.sleep(seconds)  # also when 0: yield to the loop between tokens, as a network read would


def _render(fn: Any, groups: Mapping[str, str]) -> Any:
    try:
        return fn(groups)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ProviderError("llm", f"scripted template failed: {type(exc).__name__}: {exc}", kind="config") from None


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):  # vision: text parts only
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def _answer_to_tool(rules: Sequence[ScriptRule], messages: list[dict[str, Any]], user_text: str) -> str | None:
    """After our own tool call: the rule's reply to the tool's result(s); None otherwise."""
    results: list[str] = []
    i = len(messages) - 1
    while i >= 0 and messages[i].get("role") == "tool":
        results.insert(0, str(messages[i].get("content") or ""))
        i -= 1
    if not results or i < 0:
        return None
    calls = messages[i].get("tool_calls") or []
    m = re.fullmatch(r"call_scripted_(\d+)_\d+", str(calls[0].get("id", ""))) if calls else None
    if m is None or int(m.group(1)) >= len(rules):
        return None
    rule = rules[int(m.group(1))]
    result = " ".join(results)
    groups = rule.match(user_text) or {}
    template = rule.error_reply if _is_error(result) else (rule.reply or "{result}")
    return _render(lambda g: render(template, g), {**groups, "result": result})


def _is_error(output: str) -> bool:
    """A failed call, as the model reads it: the executor's "Error…" text or {"error": …}."""
    if output.startswith("Error"):
        return True
    try:
        data = json.loads(output)
    except ValueError:
        return False
    return isinstance(data, dict) and "error" in data


def _count(text: str) -> int:
    return len(_COUNTED.findall(text))


def _usage(messages: list[dict[str, Any]], completion: str) -> Usage:
    prompt = sum(_count(_last_user_text([m]) if m.get("role") == "user" else str(m.get("content") or ""))
                 for m in messages)
    done = _count(completion)
    return Usage(prompt, done, prompt + done)
