from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from agents import services
from agents.demo_config import PROVIDER_SETS, default_provider_set, demo_config
from agents.models import Agent, AgentState
from agents.tools.sync import tool_sync

DEMO_AGENT_ID = "demo"


def ensure_demo_tools() -> None:
    """Make sure the example tools are registered as Tool rows."""
    report = tool_sync()
    if "get_weather" in report.failed:
        raise CommandError(f"the example tool get_weather could not be registered: {report.failed['get_weather']}")


class Command(BaseCommand):
    help = ("Create or update the active demo agent (agent_id 'demo') with one example tool and local providers "
            "(pocketsphinx, the scripted model, espeak-ng) or, when OPENAI_API_KEY/OPENAI_BASE_URL is set, OpenAI's.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--providers", choices=PROVIDER_SETS, default=os.environ.get("DEMO_PROVIDERS") or None,
            help="local: no service needed; openai: OpenAI or the OpenAI-compatible server at OPENAI_BASE_URL for "
                 "LLM, STT and TTS; openai-llm: such a server for the LLM only, local speech. Default: "
                 "$DEMO_PROVIDERS, else openai when OPENAI_API_KEY or OPENAI_BASE_URL is set, else local.")
        parser.add_argument("--llm-model", default=os.environ.get("DEMO_LLM_MODEL") or "gpt-4o-mini",
                            help="the chat model for openai/openai-llm (default: $DEMO_LLM_MODEL or gpt-4o-mini)")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        providers = options["providers"] or default_provider_set()
        if providers not in PROVIDER_SETS:
            raise CommandError(f"--providers / DEMO_PROVIDERS: {providers!r} is not one of {', '.join(PROVIDER_SETS)}")
        config = demo_config(providers, llm_model=options["llm_model"])
        ensure_demo_tools()
        agent = Agent.objects.filter(agent_id=DEMO_AGENT_ID).first()
        if agent is None:
            fields = {k: v for k, v in config.items() if k != "instructions"}
            agent = services.agent_create(agent_id=DEMO_AGENT_ID, instructions=config["instructions"], actor="load_demo",
                                          **fields)
            verb = "created"
        elif agent.state == AgentState.DESTROYED:
            self.stderr.write("The demo agent was destroyed; destroyed agents stay destroyed. Nothing changed.")
            return
        else:
            services.agent_update(agent=agent, actor="load_demo", **config)
            verb = "updated"
        if agent.state != AgentState.ACTIVE:
            services.agent_activate(agent=agent)
        self.stdout.write(f"demo agent {verb}: agent_id=demo version={agent.version} state={agent.state} "
                          f"providers={providers}")
