"""Run an agent through scripted turns on the local transport and report pass/fail.

    manage.py test AGENT --turn "what's the weather in Paris?" --expect "Paris" --expect-tool get_weather
    manage.py test AGENT --script turns.json    # [{"user": "...", "expect": "regex", "expect_tool": "name"}, ...]

(This replaces Django's own `test` command; the project's test suite runs with pytest.)
"""
from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.credentials import agent_endpoints
from agents.models import Agent
from agents.tools.executor import build_tool_executor
from sessions.launch import ConfigError, build_session
from runtime.transports import LocalTransport


@dataclass
class Turn:
    user: str
    expect: str | None = None
    expect_tool: str | None = None
    replies: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        problems = []
        reply = " ".join(self.replies)
        if not self.replies:
            problems.append("no reply")
        if self.expect and not re.search(self.expect, reply, re.IGNORECASE):
            problems.append(f"reply does not match /{self.expect}/")
        if self.expect_tool and self.expect_tool not in self.tools:
            problems.append(f"tool {self.expect_tool} was not called (called: {', '.join(self.tools) or 'none'})")
        problems.extend(f"error: {e}" for e in self.errors)
        return problems


class TurnRecorder:
    """EventSink that files replies, tool calls and errors under the current turn."""

    def __init__(self) -> None:
        self.turn: Turn | None = None

    def emit(self, event: Any) -> None:
        if self.turn is None:
            return
        if event.type == "response_generated" and event.text:
            self.turn.replies.append(event.text)
        elif event.type == "tool_called":
            self.turn.tools.append(event.name)
        elif event.type == "error" and not getattr(event, "recoverable", True):
            self.turn.errors.append(event.message)


def load_turns(o: dict[str, Any]) -> list[Turn]:
    if o["script"]:
        try:
            data = json.loads(Path(o["script"]).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"--script: {exc}") from None
        if not isinstance(data, list) or not all(isinstance(t, dict) and isinstance(t.get("user"), str) for t in data):
            raise CommandError('--script must be a JSON list of {"user": str, "expect"?: regex, "expect_tool"?: name}')
        return [Turn(user=t["user"], expect=t.get("expect"), expect_tool=t.get("expect_tool")) for t in data]
    if not o["turn"]:
        raise CommandError("give --turn TEXT (repeatable) or --script FILE")
    expects = o["expect"] or []
    tools = o["expect_tool"] or []
    return [Turn(user=text, expect=expects[i] if i < len(expects) else None, expect_tool=tools[i] if i < len(tools) else None)
            for i, text in enumerate(o["turn"])]


class Command(BaseCommand):
    help = "Run an agent through scripted turns on the local transport and report pass/fail per turn."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("agent_id")
        parser.add_argument("--turn", action="append", help="user text of one turn (repeatable)")
        parser.add_argument("--expect", action="append", help="regex the reply to the turn of the same position must match")
        parser.add_argument("--expect-tool", action="append", help="tool the turn of the same position must call")
        parser.add_argument("--script", help="JSON file with the turns")
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds per turn")

    def handle(self, *args: Any, **o: Any) -> None:
        agent = Agent.objects.filter(agent_id=o["agent_id"]).first()
        if agent is None:
            raise CommandError(f"no agent {o['agent_id']!r}")
        turns = load_turns(o)
        config = agent.config_snapshot()
        tools = build_tool_executor(list(config.get("tools") or []))
        endpoints = agent_endpoints(config)
        recorder = TurnRecorder()

        async def main() -> None:
            session = build_session(config, sink=recorder, tools=tools, transport=LocalTransport(),
                                    session_id=f"test-{uuid.uuid4().hex[:8]}", agent_id=agent.agent_id,
                                    endpoints=endpoints)
            await session.start()
            try:
                for turn in turns:
                    recorder.turn = turn
                    session.push_text(turn.user)
                    try:
                        await asyncio.wait_for(session.wait_idle(), o["timeout"])
                    except asyncio.TimeoutError:
                        turn.errors.append(f"no answer within {o['timeout']:g} s")
            finally:
                await session.stop("test_done")

        try:
            asyncio.run(main())
        except ConfigError as exc:
            raise CommandError(f"agent {agent.agent_id}: {exc}") from None
        failed = 0
        for i, turn in enumerate(turns, 1):
            problems = turn.failures()
            failed += bool(problems)
            mark = self.style.ERROR("FAIL") if problems else self.style.SUCCESS("PASS")
            self.stdout.write(f"[{mark}] turn {i}: {turn.user}")
            self.stdout.write(f"       agent: {' '.join(turn.replies) or '-'}" + (f"  (tools: {', '.join(turn.tools)})" if turn.tools else ""))
            for p in problems:
                self.stdout.write(f"       {p}")
        self.stdout.write(f"{len(turns) - failed}/{len(turns)} turns passed")
        if failed:
            raise CommandError(f"{failed} turn(s) failed")
