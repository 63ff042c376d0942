from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at module level: app modules need the app registry loaded.
        from controlplane.celery import app
        from sessions.event_sink import on_events_stored
        from webhooks import signals
        from webhooks.enqueue import enqueue_for_stored_events

        on_events_stored(enqueue_for_stored_events)
        signals.connect()
        schedule = dict(app.conf.beat_schedule or {})
        schedule.setdefault("webhooks.requeue_stale", {"task": "webhooks.requeue_stale", "schedule": 60.0})
        app.conf.beat_schedule = schedule
