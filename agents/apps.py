from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_tools_after_migrate(sender: AppConfig, **kwargs: Any) -> None:
    # Agents may only name registered tools, so code tools get their rows as soon as the
    # tables exist (migrate runs before every start: scripts/run, compose's migrate job).
    from agents.tool_sync import sync_tools_safely

    sync_tools_safely()


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents and tools"

    def ready(self) -> None:
        post_migrate.connect(_sync_tools_after_migrate, sender=self)
