"""WebSocket routes. The dashboard work adds the session and fleet consumers here."""
websocket_urlpatterns: list = []
