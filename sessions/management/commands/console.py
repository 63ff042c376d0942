"""Run an agent on the local transport against a WAV file or typed text.

    python manage.py console AGENT_ID [--wav PATH [--fast]] [--text TEXT] [--json] [--save-audio OUT.wav]

Prints the transcript, tool calls and per-turn latency; with --json, every session event
as one JSON line in the DESIGN.md envelope. Exits when the agent has finished replying to
the last input. Provider settings (base_url included) come from the agent's config.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import sys
import uuid
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError

from agents.credentials import agent_endpoints
from agents.models import Agent
from agents.tools.executor import ToolExecutor
from runtime.audio import MalformedAudio, read_wav, wav_bytes
from runtime.transports import LocalTransport
from sessions.launch import ConfigError, build_session


class ConsolePrinter:
    """An EventSink that prints either a readable transcript or JSON envelopes."""

    def __init__(self, out: TextIO, *, as_json: bool, session_id: str) -> None:
        self.out = out
        self.as_json = as_json
        self.session_id = session_id
        self._seq = itertools.count(1)
        self.errors = 0

    def emit(self, event: Any) -> None:
        if event.type == "error":
            self.errors += 1
        if self.as_json:
            envelope = {"session_id": self.session_id, "seq": next(self._seq), "type": event.type,
                        "at": event.at.isoformat().replace("+00:00", "Z"), "data": event.envelope_data()}
            self.out.write(json.dumps(envelope) + "\n")
            self.out.flush()
            return
        line = self._line(event)
        if line:
            self.out.write(line + "\n")
            self.out.flush()

    def _line(self, e: Any) -> str | None:
        t = e.type
        if t == "turn_ended" and e.text:
            return f"user: {e.text}"
        if t == "tool_called":
            return f"tool: {e.name}({e.arguments})"
        if t == "tool_completed":
            return f"tool: {e.name} -> {e.output} ({e.duration_ms:.0f} ms)"
        if t == "tool_error":
            return f"tool: {e.name} failed [{e.error_kind}]: {e.error}"
        if t == "response_generated":
            return f"agent: {e.text}"
        if t == "interrupted":
            return f"agent (interrupted): {e.played_text}"
        if t == "error":
            return f"error [{e.source}/{e.error_kind or 'error'}]: {e.message}"
        if t == "metrics_collected":
            m = e.metrics

            def f(v: float | None) -> str:
                return "-" if v is None else f"{v:.0f} ms"

            return (f"latency: end-of-utterance {f(m.end_of_utterance_delay_ms)} · stt {f(m.stt_duration_ms)} · "
                    f"llm ttft {f(m.llm_ttft_ms)} · tts ttfb {f(m.tts_ttfb_ms)} · end-to-end {f(m.end_to_end_ms)} · "
                    f"tokens {m.total_tokens}")
        return None


class Command(BaseCommand):
    help = "Talk to an agent locally: a WAV file, --text, or lines from stdin."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("agent_id")
        parser.add_argument("--wav", help="a 16-bit PCM WAV file (any rate, mono or stereo)")
        parser.add_argument("--text", help="one user message (stdin lines when neither --wav nor --text)")
        parser.add_argument("--json", action="store_true", help="print every event as a JSON line")
        parser.add_argument("--save-audio", help="write the agent's audio to this WAV file")
        parser.add_argument("--fast", action="store_true",
                            help="feed the WAV as fast as possible (pauses shorter than the endpointing delay "
                                 "then no longer separate turns); default: real-time pace, like a microphone")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            agent = Agent.objects.get(agent_id=opts["agent_id"])
        except Agent.DoesNotExist:
            raise CommandError(f"no agent {opts['agent_id']!r}") from None
        config = agent.config_snapshot()
        tools = ToolExecutor.for_tools(list(config.get("tools") or []))
        endpoints = agent_endpoints(config)
        wav = None
        if opts["wav"]:
            try:
                wav = read_wav(opts["wav"])
            except (OSError, EOFError, MalformedAudio) as exc:
                raise CommandError(f"--wav: {exc}") from None
            except Exception as exc:  # wave.Error: not a WAV file
                raise CommandError(f"--wav: cannot read {opts['wav']}: {exc}") from None
        # stdin only when neither --wav nor --text is given
        texts: list[str] | None = [opts["text"]] if opts["text"] else ([] if wav is not None else None)
        session_id = f"console-{uuid.uuid4().hex[:8]}"
        printer = ConsolePrinter(self.stdout, as_json=opts["json"], session_id=session_id)
        transport = LocalTransport(record_audio=bool(opts["save_audio"]), max_record_s=600)
        try:
            session = None

            async def main() -> None:
                nonlocal session
                session = build_session(config, sink=printer, tools=tools, transport=transport,
                                        session_id=session_id, agent_id=agent.agent_id, endpoints=endpoints)
                if wav is not None and session.stt is None:
                    raise CommandError(f"agent {agent.agent_id} has no STT provider: use --text")
                await session.start()
                try:
                    if wav is not None:
                        samples, rate, channels = wav
                        await transport.play(samples, rate, channels, realtime=not opts["fast"],
                                             tail_silence_ms=1500)
                        await session.wait_idle()
                    for line in texts if texts is not None else _stdin_lines():
                        if line.strip():
                            session.push_text(line)
                            await session.wait_idle()
                finally:
                    await session.stop("console_done")

            asyncio.run(main())
        except ConfigError as exc:
            raise CommandError(f"agent {agent.agent_id}: {exc}") from None
        if opts["save_audio"]:
            with open(opts["save_audio"], "wb") as fh:
                fh.write(wav_bytes(transport.recorded_audio(), transport.out_rate))


def _stdin_lines() -> Any:
    for line in sys.stdin:
        yield line.rstrip("\n")
