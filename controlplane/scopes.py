"""API key scopes. `admin` implies every other scope.

Dashboard users (Django login) get no scope from `is_staff`: a scope is theirs when they hold
every Django model permission listed for it in `SCOPE_PERMISSIONS` (directly or through a
group); superusers hold all of them. `admin` has no permission list: superusers only.
"""
READ = "read"
AGENTS_WRITE = "agents:write"
JOBS_WRITE = "jobs:write"
SESSIONS_CONTROL = "sessions:control"
TOOLS_WRITE = "tools:write"
WORKERS_WRITE = "workers:write"
WEBHOOKS_WRITE = "webhooks:write"
ADMIN = "admin"
LOADTEST = "loadtest"  # may dispatch load-test calls (metadata.loadtest); see LOADTEST_ALLOWED

ALL_SCOPES = (READ, AGENTS_WRITE, JOBS_WRITE, SESSIONS_CONTROL, TOOLS_WRITE, WORKERS_WRITE, WEBHOOKS_WRITE, ADMIN, LOADTEST)

# Permission names are `<app_label>.<codename>` strings, so this module still imports no app.
SCOPE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    READ: ("agents.view_agent", "agents.view_tool", "workers.view_job", "workers.view_worker", "agent_sessions.view_agentsession"),
    AGENTS_WRITE: ("agents.add_agent", "agents.change_agent", "agents.delete_agent"),
    JOBS_WRITE: ("workers.add_job", "workers.change_job"),
    SESSIONS_CONTROL: ("agent_sessions.change_agentsession",),
    TOOLS_WRITE: ("agents.add_tool", "agents.change_tool"),
    WORKERS_WRITE: ("workers.change_worker",),
    LOADTEST: ("workers.add_job",),
    WEBHOOKS_WRITE: ("webhooks.add_webhookendpoint", "webhooks.change_webhookendpoint", "webhooks.delete_webhookendpoint"),
}


def user_has_scope(user: object, scope: str) -> bool:
    """A logged-in, active user's scope, from their Django permissions (never from is_staff)."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    if getattr(user, "is_superuser", False):
        return True
    needed = SCOPE_PERMISSIONS.get(scope)
    return bool(needed) and user.has_perms(needed)  # type: ignore[attr-defined]
