"""The tools routes on their own, as the project includes them under /api/v1/."""
from django.urls import include, path

urlpatterns = [path("api/v1/", include("agents.tools.urls"))]
