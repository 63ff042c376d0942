"""Dashboard pages (server-rendered, login required) and the one-time login links."""
from django.urls import path

from dashboard import agents, jobs, live, overview, playground
from dashboard.login_link import login_with_token

app_name = "dashboard"

urlpatterns = [
    path("", overview.overview_page, name="overview"),
    path("overview/panels", overview.overview_fragment, name="overview-panels"),
    path("agents/", agents.agent_list, name="agents"),
    path("agents/<str:agent_id>/", agents.agent_detail, name="agent"),
    path("agents/<str:agent_id>/activate", agents.agent_lifecycle, {"action": "activate"}, name="agent-activate"),
    path("agents/<str:agent_id>/deactivate", agents.agent_lifecycle, {"action": "deactivate"}, name="agent-deactivate"),
    path("sessions/", live.session_list, name="sessions"),
    path("sessions/<str:session_id>/", live.session_live, name="session"),
    path("sessions/<str:session_id>/replay", live.session_replay, name="session-replay"),
    path("sessions/<str:session_id>/recording", live.session_recording, name="session-recording"),
    path("sessions/<str:session_id>/actions/<str:command>", live.session_action, name="session-action"),
    path("jobs/", jobs.job_list, name="jobs"),
    path("jobs/<str:job_id>/", jobs.job_detail, name="job"),
    path("jobs/<str:job_id>/status.json", jobs.job_status, name="job-status"),
    path("jobs/<str:job_id>/cancel", jobs.job_cancel, name="job-cancel"),
    path("playground/", playground.playground_page, name="playground"),
    path("playground/start", playground.playground_start, name="playground-start"),
    path("login/<str:token>", login_with_token, name="login-link"),  # printed by `manage.py dashboard`
]
