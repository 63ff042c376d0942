from django.apps import AppConfig


class ServerConfig(AppConfig):
    """The URL/ASGI roof: it holds no models, only the commands that serve everything."""

    name = "server"
    verbose_name = "Server"
