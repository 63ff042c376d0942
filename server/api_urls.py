"""Routes under /api/v1/. Nothing here is anonymous: the schema and docs need a login or a key."""
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from agents import api as agents_api
from agents import api_credentials
from controlplane.api_auth import HasScope
from sessions import api as sessions_api
from webhooks import api as webhooks_api
from workers import api as workers_api

_authenticated = {"permission_classes": [HasScope]}  # reads need `read`

urlpatterns = [
    # jobs first: Django tries the patterns in order, and POST jobs/ (dispatch) is the hot path;
    # no other route here starts with "jobs/": where they stand changes no URL's view, only how soon it is found
    path("jobs/", workers_api.JobListView.as_view(), name="api-jobs"),
    path("jobs/<str:job_id>/", workers_api.JobDetailView.as_view(), name="api-job"),
    path("jobs/<str:job_id>/cancel", workers_api.JobCancelView.as_view(), name="api-job-cancel"),
    path("schema/", SpectacularAPIView.as_view(**_authenticated), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema", **_authenticated), name="api-docs"),
    # agents
    path("agents/", agents_api.AgentListView.as_view(), name="api-agents"),
    path("agents/<str:agent_id>/", agents_api.AgentDetailView.as_view(), name="api-agent"),
    path("agents/<str:agent_id>/activate", agents_api.AgentActivateView.as_view(), name="api-agent-activate"),
    path("agents/<str:agent_id>/deactivate", agents_api.AgentDeactivateView.as_view(), name="api-agent-deactivate"),
    path("agents/<str:agent_id>/versions/", agents_api.AgentVersionListView.as_view(), name="api-agent-versions"),
    # tools (agents/tools/urls.py)
    path("", include("agents.tools.urls")),
    # named credentials (names and hosts; values are written in the admin)
    path("credentials/", api_credentials.CredentialListView.as_view(), name="api-credentials"),
    # sessions
    path("sessions/", sessions_api.SessionListView.as_view(), name="api-sessions"),
    path("sessions/<str:session_id>/", sessions_api.SessionDetailView.as_view(), name="api-session"),
    path("sessions/<str:session_id>/events/", sessions_api.SessionEventListView.as_view(), name="api-session-events"),
    path("sessions/<str:session_id>/recording", sessions_api.SessionRecordingView.as_view(), name="api-session-recording"),
    path("sessions/<str:session_id>/say", sessions_api.SessionSayView.as_view(), name="api-session-say"),
    path("sessions/<str:session_id>/interrupt", sessions_api.SessionInterruptView.as_view(), name="api-session-interrupt"),
    path("sessions/<str:session_id>/end", sessions_api.SessionEndView.as_view(), name="api-session-end"),
    path("sessions/<str:session_id>/messages", sessions_api.SessionMessageView.as_view(), name="api-session-messages"),
    path("sessions/<str:session_id>/pause", sessions_api.SessionPauseView.as_view(), name="api-session-pause"),
    path("sessions/<str:session_id>/resume", sessions_api.SessionResumeView.as_view(), name="api-session-resume"),
    # webhooks
    path("webhooks/", webhooks_api.WebhookListView.as_view(), name="api-webhooks"),
    path("webhooks/<str:webhook_id>/", webhooks_api.WebhookDetailView.as_view(), name="api-webhook"),
    path("webhooks/<str:webhook_id>/deliveries/", webhooks_api.WebhookDeliveryListView.as_view(),
         name="api-webhook-deliveries"),
    # workers
    path("workers/", workers_api.WorkerListView.as_view(), name="api-workers"),
    path("workers/<str:worker_id>/drain", workers_api.WorkerDrainView.as_view(), name="api-worker-drain"),
]
