from django.contrib import admin
from django.urls import include, path

from server import probes

urlpatterns = [
    # the REST API first: POST api/v1/jobs/ is the hot path, and no other prefix here overlaps it
    path("api/v1/", include("server.api_urls")),
    path("health", probes.health, name="health"),
    path("health/ready", probes.ready, name="health-ready"),
    path("health/live", probes.live, name="health-live"),
    path("metrics", probes.metrics, name="metrics"),
    path("status", probes.status, name="status"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("dashboard.urls")),
]
