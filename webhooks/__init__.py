"""Signed event webhooks (Standard Webhooks) for session events.

Place in the import order: above `sessions` (it reads sessions' stored events and rows and
subscribes to the event sink through `sessions.event_sink.on_events_stored`, so sessions
never imports it) and below `workers` (whose Celery workers run its delivery task).
"""
