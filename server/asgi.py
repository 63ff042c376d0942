import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
# Django must be set up before the consumers (which import models) are imported.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from controlplane.body_limit import BodyLimitMiddleware  # noqa: E402
from controlplane.reason_phrases import install as install_reason_phrases  # noqa: E402
from server.routing import websocket_urlpatterns  # noqa: E402

install_reason_phrases()  # "429 Too Many Requests", not "429 Unknown Status", from daphne

# daphne serves no static files itself; Django's handler does (set SERVE_STATIC=false
# when a reverse proxy serves collected static files instead).
http_app = BodyLimitMiddleware(ASGIStaticFilesHandler(django_asgi_app) if settings.SERVE_STATIC else django_asgi_app)

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
