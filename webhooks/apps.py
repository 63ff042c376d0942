from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at module level: app modules need the app registry loaded.
        from sessions.event_sink import on_events_stored
        from webhooks import signals
        from webhooks.enqueue import enqueue_for_stored_events

        on_events_stored(enqueue_for_stored_events)
        signals.connect()
