"""The roof: URL routes, WebSocket routes, the ASGI application, probes and /metrics."""
