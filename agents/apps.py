from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents and tools"

    def ready(self) -> None:
        from agents.tools import log_redaction  # app loading: the tools package needs the registry

        log_redaction.install()  # provider requests (the OpenAI SDK) log URLs too, tools or not
