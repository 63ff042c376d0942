"""One settings module, read from the environment.

Defaults are the embedded mode (SQLite, in-memory Celery broker and channel layer): one
process, no external services. DATABASE_URL and REDIS_URL switch to PostgreSQL and Redis.
"""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from controlplane.env import env_bool, env_choice, env_float, env_int, env_json_object, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CONTROLPLANE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite file, generated secrets, multiprocess metrics

DEBUG = env_bool("DEBUG", False)
# A fixed development key keeps the embedded mode one command. Any server using external
# services (DATABASE_URL or REDIS_URL set) is a real deployment and must bring its own key:
# with a known key, sessions, login links and stored tool secrets can be forged or read.
DEVELOPMENT_SECRET_KEY = "embedded-mode-insecure-key-change-me-in-production"
PLACEHOLDER_SECRET_KEYS = {DEVELOPMENT_SECRET_KEY, "change-me-to-a-long-random-string"}  # the latter: .env.example
SECRET_KEY = env_str("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
USES_EXTERNAL_SERVICES = bool(env_str("DATABASE_URL") or env_str("REDIS_URL"))
if USES_EXTERNAL_SERVICES and (not SECRET_KEY.strip() or SECRET_KEY in PLACEHOLDER_SECRET_KEYS):
    raise ImproperlyConfigured(
        "SECRET_KEY is empty or a built-in/example value, and DATABASE_URL or REDIS_URL is set, so this is not "
        "the embedded mode: refusing to start. Set SECRET_KEY to a long random string, e.g. the output of "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Separate key for encrypting tool secrets at rest; derived from SECRET_KEY when unset.
FIELD_ENCRYPTION_KEY = env_str("FIELD_ENCRYPTION_KEY", "")

INSTALLED_APPS = [
    "daphne",
    "axes",  # login throttling: failed logins per username and client address
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally, not from a CDN
    "channels",
    "controlplane",
    "agents",
    "sessions.apps.AgentSessionsConfig",
    "webhooks",
    "workers",
    "dashboard",  # the pages, above every app
    "server",  # the URL/ASGI roof: urls, routing, asgi, probes; the `embedded` and `metrics` commands
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: answers locked-out logins
]

# Django's cookie-then-session storage, its backends built only for a request that uses
# messages (controlplane.message_storage): not for every API request
MESSAGE_STORAGE = "controlplane.message_storage.LazyFallbackStorage"

ROOT_URLCONF = "server.urls"
ASGI_APPLICATION = "server.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "")
# DB_POOL_MAX_SIZE > 0: each process keeps a psycopg pool of at most that many PostgreSQL
# connections, and a thread's connection goes back to it when Django closes it. A worker's
# pool threads close theirs while their session runs (hundreds of sessions, ~100 server
# connections), so without a pool every job opened two fresh ones (a server process each).
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0, minimum=0, maximum=1000)
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0 if DB_POOL_MAX_SIZE else env_int("DB_CONN_MAX_AGE", 60))}
    if DB_POOL_MAX_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1, "max_size": DB_POOL_MAX_SIZE,
            # a thread waits this long for a free connection before its query fails
            "timeout": env_float("DB_POOL_TIMEOUT", 10.0),
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "controlplane.sqlite3",
            # Many threads (web, worker, sessions) share one SQLite file in embedded mode.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
            # A file, not shared-cache memory: threads then lock like they do in the real run.
            # One file per test run, so runs side by side don't trample each other.
            "TEST": {"NAME": VAR_DIR / f"test-{os.getpid()}.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# PostgreSQL: the hot path's statements (the API-key lookup, what every job runs) are prepared
# (controlplane.prepared_statements); false behind a transaction-pooling PgBouncer < 1.21.
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", True)

# --- Redis: Celery broker and channel layer ---------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
EMBEDDED = not REDIS_URL

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "controlplane.channel_layer.BatchingRedisChannelLayer",  # receives packed rounds (see there)
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 5000, "expiry": 60},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL or "cache+memory://")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_DIRECT = True  # every worker gets its own queue: <hostname>.dq2
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
# With acks_late, Redis re-delivers tasks running longer than this; sessions can be long.
# The job claim in the database makes a re-delivery harmless; this keeps it rare.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 3600, minimum=60)}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # kombu's Redis transport with the restore-after-connection-loss crash fixed (see the module)
    CELERY_BROKER_TRANSPORT = "controlplane.broker_transport:Transport"
# Reconnect to a restarted broker for as long as it takes (the default gives up after 100
# tries and shuts the worker down); live sessions keep running meanwhile: cancelling them
# on a broker blip would end calls that need nothing from the broker.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- auth ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out username+address before the password check
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling (admin and dashboard logins): after AXES_FAILURE_LIMIT wrong passwords for
# one username from one address, that pair is locked for LOGIN_LOCKOUT_MINUTES.
AXES_ENABLED = env_bool("LOGIN_THROTTLING", True)
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_STR_CALLABLE = "controlplane.login_throttle.client_str"
AXES_DISABLE_ACCESS_LOG = True  # failures are what throttling needs; no row per successful login
# The client address is REMOTE_ADDR only (axes' default): X-Forwarded-For is the client's to forge.
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "controlplane.api_auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "controlplane.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LiveKit agent control plane API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # three models have a `status` field with different choices; name each enum
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "workers.models.JobStatus",
        "WorkerStatusEnum": "workers.models.WorkerStatus",
        "SessionStatusEnum": "sessions.models.SessionStatus",
        "ToolExecutionEnum": "agents.models.ToolExecution",
    },
}

# --- i18n / static -----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
SERVE_STATIC = env_bool("SERVE_STATIC", True)

# --- the product's own knobs -------------------------------------------------------------
TOOL_MODULES = env_list("TOOL_MODULES", [])
TOOLS_ALLOW_PRIVATE_ADDRESSES = env_bool("TOOLS_ALLOW_PRIVATE_ADDRESSES", False)
# an HTTP tool's answer is streamed and refused past this size (the worker hosts every session)
TOOLS_HTTP_MAX_RESPONSE_BYTES = env_int("TOOLS_HTTP_MAX_RESPONSE_BYTES", 1_048_576, minimum=1024)
# Environment variables an agent's provider config or a tool header may name; anything else
# is stored as a named credential with the hosts it may go to (admin → Credentials).
CREDENTIAL_ENV_ALLOWLIST = env_list("CREDENTIAL_ENV_ALLOWLIST", ["OPENAI_API_KEY"])
# Hosts a provider base_url may name although the address guard would refuse them (a local
# Ollama, a model server on the private network); `*.example.com` matches subdomains.
PROVIDER_ALLOWED_HOSTS = env_list("PROVIDER_ALLOWED_HOSTS", [])

LIVEKIT_URL = env_str("LIVEKIT_URL", "")
LIVEKIT_API_KEY = env_str("LIVEKIT_API_KEY", "")
LIVEKIT_API_SECRET = env_str("LIVEKIT_API_SECRET", "")
# the room a livekit job created is deleted when the job ends (job metadata can override)
LIVEKIT_DELETE_ROOM_ON_END = env_bool("LIVEKIT_DELETE_ROOM_ON_END", True)
# after the linked caller leaves, how long the session waits for them to rejoin
LIVEKIT_LEAVE_GRACE_SECONDS = env_float("LIVEKIT_LEAVE_GRACE_SECONDS", 0.0)
# joining the room (signal + media) and publishing the agent's voice must finish in time
LIVEKIT_CONNECT_TIMEOUT_SECONDS = env_float("LIVEKIT_CONNECT_TIMEOUT_SECONDS", 20.0)
LIVEKIT_PUBLISH_TIMEOUT_SECONDS = env_float("LIVEKIT_PUBLISH_TIMEOUT_SECONDS", 10.0)
# a room still reconnecting after this long is given up: the session ends `livekit_unreachable`
LIVEKIT_RECONNECT_TIMEOUT_SECONDS = env_float("LIVEKIT_RECONNECT_TIMEOUT_SECONDS", 30.0)

DISPATCH_STRATEGY = env_choice(
    "DISPATCH_STRATEGY", "least_connections",
    ("round_robin", "least_connections", "weighted_round_robin", "load_based"),
)
# load-test calls (job metadata.loadtest) without the `loadtest` API-key scope: the embedded mode only, by default
LOADTEST_ALLOWED = env_bool("LOADTEST_ALLOWED", EMBEDDED)
JOB_QUEUE_LIMIT = env_int("JOB_QUEUE_LIMIT", 1000, minimum=1)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1, maximum=100)
JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 30, minimum=2)
WORKER_HEARTBEAT_SECONDS = env_float("WORKER_HEARTBEAT_SECONDS", 5.0)
WORKER_OFFLINE_AFTER_SECONDS = env_float("WORKER_OFFLINE_AFTER_SECONDS", 20.0)
# how long an operator command waits for the hosting worker's confirmation before a 503
SESSION_COMMAND_ACK_TIMEOUT_SECONDS = env_float("SESSION_COMMAND_ACK_TIMEOUT_SECONDS", 3.0)
# a process recomputes one agent's metrics (Agent.metrics) at most this often: a session end
# right after a recompute is counted by one shared recompute at the end of the window
AGENT_METRICS_MIN_INTERVAL_SECONDS = env_float("AGENT_METRICS_MIN_INTERVAL_SECONDS", 1.0)
# ...and longer when a recompute is costly (it reads all of the agent's sessions): a process's
# recomputes of one agent take at most this share of its time
AGENT_METRICS_MAX_SHARE = env_float("AGENT_METRICS_MAX_SHARE", 0.05, minimum=0.001, maximum=1.0)
# how long a worker retries closing a finished session/job through a database outage
DB_WRITE_RETRY_SECONDS = env_float("DB_WRITE_RETRY_SECONDS", 120.0)
# how often `manage.py supervise` (and the embedded server) reaps and assigns
SUPERVISE_INTERVAL_SECONDS = env_float("SUPERVISE_INTERVAL_SECONDS", 2.0)
CIRCUIT_BREAKER_THRESHOLD = env_int("CIRCUIT_BREAKER_THRESHOLD", 3, minimum=1)
CIRCUIT_BREAKER_COOLDOWN_SECONDS = env_float("CIRCUIT_BREAKER_COOLDOWN_SECONDS", 30.0)
DISPATCH_RATE_LIMIT_PER_MINUTE = env_int("DISPATCH_RATE_LIMIT_PER_MINUTE", 600, minimum=1)

# Event webhooks (webhooks/): attempts per event, back-off base/cap, request timeout.
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8, minimum=1, maximum=50)
WEBHOOK_RETRY_BASE_SECONDS = env_float("WEBHOOK_RETRY_BASE_SECONDS", 10.0)
WEBHOOK_RETRY_MAX_SECONDS = env_float("WEBHOOK_RETRY_MAX_SECONDS", 3600.0)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0)
WEBHOOK_SUBSCRIPTIONS_TTL_SECONDS = env_float("WEBHOOK_SUBSCRIPTIONS_TTL_SECONDS", 5.0)
# The end-of-call report's recording_url is this base + /api/v1/sessions/<id>/recording.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "").rstrip("/")

# Call recordings (agents whose recording_config says enabled): where files go and for how long.
MEDIA_ROOT = env_str("MEDIA_ROOT", str(VAR_DIR / "media"))
MEDIA_URL = "/media/"
RECORDINGS_STORAGE_BACKEND = env_str("RECORDINGS_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage")
RECORDINGS_STORAGE_OPTIONS = env_json_object("RECORDINGS_STORAGE_OPTIONS", {})
RECORDINGS_SPOOL_DIR = env_str("RECORDINGS_SPOOL_DIR", str(VAR_DIR / "recordings-spool"))
RECORDINGS_RETENTION_DAYS = env_int("RECORDINGS_RETENTION_DAYS", 30, minimum=0)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "recordings": {"BACKEND": RECORDINGS_STORAGE_BACKEND, "OPTIONS": RECORDINGS_STORAGE_OPTIONS},
}

LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # axes announces itself on every start at INFO; its lock-outs are warnings
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes.apps": {"level": "WARNING"}},
}

# --- limits and exposure ----------------------------------------------------------------
# Request bodies over this many bytes are refused with 413 before they are buffered
# (controlplane.web_server for daphne, controlplane.body_limit for any ASGI server).
REQUEST_BODY_MAX_BYTES = env_int("REQUEST_BODY_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = min(REQUEST_BODY_MAX_BYTES, 2_621_440)  # Django's own default, never above ours
# WebSocket frames from clients: the streams are one-way, so only small control messages.
WS_MAX_MESSAGE_BYTES = env_int("WS_MAX_MESSAGE_BYTES", 64 * 1024, minimum=128)
# Open sockets re-check their credential (key revoked, user logged out or deactivated).
WS_AUTH_RECHECK_SECONDS = env_float("WS_AUTH_RECHECK_SECONDS", 30.0)
# With a token set, /metrics needs `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# --- TLS in front ------------------------------------------------------------------------
# TLS_PROXY=true: a proxy in front terminates TLS and sets X-Forwarded-Proto. Cookies are then
# Secure, plain-HTTP requests are redirected (health probes and /metrics excepted: the
# orchestrator calls them over HTTP from inside) and browsers are told to use HTTPS (HSTS).
TLS_PROXY = env_bool("TLS_PROXY", False)
if TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", TLS_PROXY)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", TLS_PROXY)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", TLS_PROXY)
SECURE_REDIRECT_EXEMPT = [r"^health(/|$)", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if TLS_PROXY else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", TLS_PROXY)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", TLS_PROXY)
