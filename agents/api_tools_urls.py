"""Tools routes; included under /api/v1/."""
from django.urls import path

from agents import api_tools

urlpatterns = [
    path("tools/", api_tools.ToolListView.as_view(), name="api-tools"),
    path("tools/<str:name>/", api_tools.ToolDetailView.as_view(), name="api-tool"),
    path("tools/<str:name>/test", api_tools.ToolTestView.as_view(), name="api-tool-test"),
]
