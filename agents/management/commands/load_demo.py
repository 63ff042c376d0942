from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from agents import services
from agents.models import Agent, AgentState
from agents.tool_sync import tool_sync

DEMO_AGENT_ID = "demo"
DEMO_CONFIG: dict[str, Any] = {
    "instructions": (
        "You are a friendly voice assistant for a demo of the control plane. Keep answers short: "
        "one or two sentences, spoken style. Use the get_weather tool when asked about weather."
    ),
    "tools": ["get_weather"],
    "llm_config": {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.7},
    "stt_config": {"provider": "openai", "model": "whisper-1"},
    "tts_config": {"provider": "openai", "model": "gpt-4o-mini-tts", "voice": "alloy"},
    "vad_config": {"provider": "webrtcvad", "sensitivity": 0.5, "frame_ms": 20},
    "turn_config": {"max_tool_steps": 5},
    "metadata": {"demo": True},
}


def ensure_demo_tools() -> None:
    """Make sure the example tools are registered as Tool rows."""
    report = tool_sync()
    if "get_weather" in report.failed:
        raise CommandError(f"the example tool get_weather could not be registered: {report.failed['get_weather']}")


class Command(BaseCommand):
    help = "Create or update the active demo agent (agent_id 'demo') with the OpenAI providers and one example tool."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        ensure_demo_tools()
        agent = Agent.objects.filter(agent_id=DEMO_AGENT_ID).first()
        if agent is None:
            config = {k: v for k, v in DEMO_CONFIG.items() if k != "instructions"}
            agent = services.agent_create(agent_id=DEMO_AGENT_ID, instructions=DEMO_CONFIG["instructions"], actor="load_demo", **config)
            verb = "created"
        elif agent.state == AgentState.DESTROYED:
            self.stderr.write("The demo agent was destroyed; destroyed agents stay destroyed. Nothing changed.")
            return
        else:
            services.agent_update(agent=agent, actor="load_demo", **DEMO_CONFIG)
            verb = "updated"
        if agent.state != AgentState.ACTIVE:
            services.agent_activate(agent=agent)
        self.stdout.write(f"demo agent {verb}: agent_id=demo version={agent.version} state={agent.state}")
