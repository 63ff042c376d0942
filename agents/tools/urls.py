"""Tools routes; included under /api/v1/."""
from django.urls import path

from . import api

urlpatterns = [
    path("tools/", api.ToolListView.as_view(), name="api-tools"),
    path("tools/<str:name>/", api.ToolDetailView.as_view(), name="api-tool"),
    path("tools/<str:name>/test", api.ToolTestView.as_view(), name="api-tool-test"),
]
