"""WebSocket routes: a session's event stream and audio, and the fleet's status changes."""
from django.urls import re_path

from sessions.audio_consumer import SessionAudioConsumer
from sessions.consumers import FleetConsumer, NotFoundConsumer, SessionConsumer

websocket_urlpatterns = [
    re_path(r"^ws/sessions/(?P<session_id>[A-Za-z0-9_.-]{1,40})/$", SessionConsumer.as_asgi()),
    re_path(r"^ws/sessions/(?P<session_id>[A-Za-z0-9_.-]{1,40})/audio/$", SessionAudioConsumer.as_asgi()),
    re_path(r"^ws/fleet/$", FleetConsumer.as_asgi()),
    re_path(r"", NotFoundConsumer.as_asgi()),  # last: every other path is refused with 4404
]
