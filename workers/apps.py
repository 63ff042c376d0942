from django.apps import AppConfig
from django.conf import settings

from controlplane.celery import app


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Jobs and workers"

    def ready(self) -> None:
        # the periodic maintenance: `celery beat`, or the embedded command's periodic loop
        interval = max(0.5, float(settings.WORKER_HEARTBEAT_SECONDS))
        schedule = dict(app.conf.beat_schedule or {})
        schedule.setdefault("workers.reap", {"task": "workers.reap", "schedule": interval})
        schedule.setdefault("workers.autoscale", {"task": "workers.autoscale", "schedule": max(interval, 10.0)})
        schedule.setdefault("workers.purge_recordings", {"task": "workers.purge_recordings", "schedule": 3600.0})
        app.conf.beat_schedule = schedule
        # here, not at the top: it imports models, which only exist once the app registry is ready
        import workers.registration  # noqa: F401 - worker lifecycle signals
