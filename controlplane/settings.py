"""One settings module, read from the environment.

Defaults are the embedded mode (SQLite, in-memory Celery broker and channel layer): one
process, no external services. DATABASE_URL and REDIS_URL switch to PostgreSQL and Redis.
"""
from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from controlplane.env import env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CONTROLPLANE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite file, generated secrets, multiprocess metrics

DEBUG = env_bool("DEBUG", False)
# A fixed development key keeps the embedded mode one command; production must set one.
SECRET_KEY = env_str("SECRET_KEY", "embedded-mode-insecure-key-change-me-in-production")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Separate key for encrypting tool secrets at rest; derived from SECRET_KEY when unset.
FIELD_ENCRYPTION_KEY = env_str("FIELD_ENCRYPTION_KEY", "")

INSTALLED_APPS = [
    "daphne",
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
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
ASGI_APPLICATION = "controlplane.asgi.application"
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
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
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

# --- Redis: Celery broker and channel layer ---------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
EMBEDDED = not REDIS_URL

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
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
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- auth ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
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
JOB_QUEUE_LIMIT = env_int("JOB_QUEUE_LIMIT", 1000, minimum=1)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1, maximum=100)
JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 30, minimum=2)
WORKER_HEARTBEAT_SECONDS = env_float("WORKER_HEARTBEAT_SECONDS", 5.0)
WORKER_OFFLINE_AFTER_SECONDS = env_float("WORKER_OFFLINE_AFTER_SECONDS", 20.0)
CIRCUIT_BREAKER_THRESHOLD = env_int("CIRCUIT_BREAKER_THRESHOLD", 3, minimum=1)
CIRCUIT_BREAKER_COOLDOWN_SECONDS = env_float("CIRCUIT_BREAKER_COOLDOWN_SECONDS", 30.0)
DISPATCH_RATE_LIMIT_PER_MINUTE = env_int("DISPATCH_RATE_LIMIT_PER_MINUTE", 600, minimum=1)

LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

if not DEBUG and not EMBEDDED:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
