from django.apps import AppConfig


class AgentSessionsConfig(AppConfig):
    name = "sessions"
    # "sessions" would clash with django.contrib.sessions
    label = "agent_sessions"
    verbose_name = "Agent sessions"
