from django.contrib import admin
from django.urls import include, path

from controlplane import health

urlpatterns = [
    path("health", health.health, name="health"),
    path("health/ready", health.ready, name="health-ready"),
    path("health/live", health.live, name="health-live"),
    path("metrics", health.metrics, name="metrics"),
    path("status", health.status, name="status"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("controlplane.api_urls")),
    path("", include("workers.urls")),  # one-time login links printed by `manage.py dashboard`
    path("", include("controlplane.dashboard_urls")),
]
