"""Outside the embedded mode the settings refuse a built-in or empty SECRET_KEY, and
`check --deploy` leaves only the warnings that need TLS in front (none with TLS_PROXY=true)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = "k3y-" + "Zq8xR2mW9vL4tN7pB1cH6jF0sD5gK3yA" * 2
TLS_WARNINGS = {"security.W004", "security.W008", "security.W012", "security.W016"}
CLEARED = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DEBUG", "TLS_PROXY",
           "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "PYTEST_CURRENT_TEST")


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    full = {**base, "DJANGO_SETTINGS_MODULE": "controlplane.settings", "CONTROLPLANE_VAR_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=120)


def production(**extra: str) -> dict[str, str]:
    # settings only: `check` does not connect, so the hosts need not exist
    return {"DATABASE_URL": "postgres://cp:pw@db.invalid:5432/cp", "REDIS_URL": "redis://redis.invalid:6379/0",
            "ALLOWED_HOSTS": "cp.example.com", **extra}


def warning_ids(output: str) -> set[str]:
    return set(re.findall(r"\((security\.W\d+|[a-z_]+\.[WE]\d+)\)", output))


@pytest.mark.parametrize(("service", "secret"), [
    ("DATABASE_URL", None), ("DATABASE_URL", ""), ("DATABASE_URL", "   "),
    ("DATABASE_URL", "embedded-mode-insecure-key-change-me-in-production"),
    ("DATABASE_URL", "change-me-to-a-long-random-string"), ("REDIS_URL", None),
], ids=["unset", "empty", "blank", "built-in", "example", "redis-only"])
def test_production_refuses_to_start_without_its_own_secret_key(tmp_path: Path, secret: str | None, service: str) -> None:
    env = {service: production()[service]}
    if secret is not None:
        env["SECRET_KEY"] = secret
    result = manage(tmp_path, "check", **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY" in result.stderr and "refusing to start" in result.stderr


def test_the_embedded_mode_still_starts_with_the_built_in_key(tmp_path: Path) -> None:
    result = manage(tmp_path, "check")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_in_production_leaves_only_the_tls_warnings(tmp_path: Path) -> None:
    result = manage(tmp_path, "check", "--deploy", **production(SECRET_KEY=STRONG_KEY))
    assert result.returncode == 0, result.stderr
    assert warning_ids(result.stdout + result.stderr) == TLS_WARNINGS, result.stdout + result.stderr


def test_check_deploy_behind_a_tls_proxy_has_no_warnings(tmp_path: Path) -> None:
    result = manage(tmp_path, "check", "--deploy", **production(SECRET_KEY=STRONG_KEY, TLS_PROXY="true"))
    assert result.returncode == 0, result.stderr
    assert warning_ids(result.stdout + result.stderr) == set(), result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_tls_switch_turns_on_secure_cookies_hsts_and_the_proxy_header(tmp_path: Path) -> None:
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER)")
    env = {**{k: v for k, v in os.environ.items() if k not in CLEARED}, "DJANGO_SETTINGS_MODULE": "controlplane.settings",
           "CONTROLPLANE_VAR_DIR": str(tmp_path), **production(SECRET_KEY=STRONG_KEY, TLS_PROXY="true")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "True", "True", "31536000", "('HTTP_X_FORWARDED_PROTO',", "'https')"], out.stderr


@pytest.mark.django_db
def test_with_the_redirect_on_probes_stay_on_http_and_pages_move_to_https(client: Client, settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client.get("/health").status_code == 200
    assert client.get("/health/live").status_code == 200
    assert client.get("/metrics").status_code == 200
    moved = client.get("/admin/")
    assert moved.status_code == 301 and moved["Location"].startswith("https://")
    assert client.get("/admin/", headers={"X-Forwarded-Proto": "https"}).status_code == 302  # to the login page


@pytest.mark.parametrize(("pool", "expected"), [("20", "0 {'min_size': 1, 'max_size': 20, 'timeout': 10.0}"), ("0", "60 None")])
def test_a_pooled_process_keeps_no_connection_of_its_own_beyond_the_pool(tmp_path: Path, pool: str, expected: str) -> None:
    # with the pool, a thread's connection goes back to it (CONN_MAX_AGE 0) even when DB_CONN_MAX_AGE
    # asks to keep it: the pool's max_size is the process's whole PostgreSQL budget
    code = ("import django; django.setup(); from django.conf import settings as s; d = s.DATABASES['default']; "
            "print(d['CONN_MAX_AGE'], d.get('OPTIONS', {}).get('pool'))")
    env = {**{k: v for k, v in os.environ.items() if k not in CLEARED + ("DB_POOL_MAX_SIZE", "DB_POOL_TIMEOUT")},
           "DJANGO_SETTINGS_MODULE": "controlplane.settings", "CONTROLPLANE_VAR_DIR": str(tmp_path),
           **production(SECRET_KEY=STRONG_KEY, DB_POOL_MAX_SIZE=pool, DB_CONN_MAX_AGE="60")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == expected, out.stderr
