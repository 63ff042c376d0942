"""API key scopes. `admin` implies every other scope."""
READ = "read"
AGENTS_WRITE = "agents:write"
JOBS_WRITE = "jobs:write"
SESSIONS_CONTROL = "sessions:control"
TOOLS_WRITE = "tools:write"
WORKERS_WRITE = "workers:write"
WEBHOOKS_WRITE = "webhooks:write"
ADMIN = "admin"

ALL_SCOPES = (READ, AGENTS_WRITE, JOBS_WRITE, SESSIONS_CONTROL, TOOLS_WRITE, WORKERS_WRITE, WEBHOOKS_WRITE, ADMIN)
