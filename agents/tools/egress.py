"""Where a server secret may be sent.

Agent and tool writers may *name* a secret (a named credential, or an environment variable
on CREDENTIAL_ENV_ALLOWLIST) but never choose where an arbitrary one goes: a credential
goes only to the hosts stored with it, and the default OPENAI_API_KEY only to OpenAI's
own API or to OPENAI_BASE_URL. The check runs where the request is built, against the
host it is about to be sent to. A refusal names the secret and the host, never the value.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

from runtime.provider_configs import CREDENTIAL_NAME

from .errors import ToolError

__all__ = ["CREDENTIAL_NAME", "HOST_PATTERN", "Secret", "SecretNotAllowed", "default_openai_key", "env_allowlist",
           "env_reference_problem", "env_secret", "host_matches", "openai_key_hosts"]

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
# a DNS name or IP literal, optionally `*.` for its subdomains; no scheme, port or path
HOST_PATTERN = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
                          r"|^\[?[0-9a-f:.]+\]?$", re.I)


class SecretNotAllowed(ToolError):
    """A secret was about to go somewhere it may not (or cannot be named at all)."""


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """`api.example.com` matches itself; `*.example.com` matches its subdomains."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower().strip().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and host != pattern[2:]:
                return True
        elif host == pattern:
            return True
    return False


@dataclass(frozen=True)
class Secret:
    label: str  # "credential 'name'" or "environment variable NAME": safe to show
    value: str = field(repr=False)
    hosts: tuple[str, ...] | None  # None: any host that passes the address guard

    def value_for(self, host: str) -> str:
        if self.hosts is not None and not host_matches(host, self.hosts):
            allowed = ", ".join(self.hosts) or "no host"
            raise SecretNotAllowed(f"{self.label} may not be sent to {host} (allowed: {allowed})")
        return self.value


def env_allowlist() -> frozenset[str]:
    try:
        return frozenset(getattr(settings, "CREDENTIAL_ENV_ALLOWLIST", [OPENAI_KEY_ENV]))
    except Exception:  # settings not configured: the safe default
        return frozenset({OPENAI_KEY_ENV})


def env_reference_problem(name: str) -> str | None:
    """Why a config may not name this environment variable, or None if it may."""
    if name in env_allowlist():
        return None
    return (f"environment variable {name} is not on CREDENTIAL_ENV_ALLOWLIST; store the value as a "
            "named credential (admin → Credentials, with the hosts it may go to) and reference it by name")


def openai_key_hosts() -> tuple[str, ...]:
    """Where the server's own OPENAI_API_KEY may go: OpenAI, or the operator's OPENAI_BASE_URL."""
    hosts = [urlsplit(DEFAULT_OPENAI_BASE_URL).hostname or "api.openai.com"]
    configured = urlsplit(os.environ.get("OPENAI_BASE_URL") or "").hostname
    if configured:
        hosts.append(configured)
    return tuple(hosts)


def env_secret(name: str) -> Secret | None:
    """An allowlisted environment variable as a Secret (None when unset)."""
    problem = env_reference_problem(name)
    if problem:
        raise SecretNotAllowed(problem)
    value = os.environ.get(name)
    if not value:
        return None
    hosts = openai_key_hosts() if name == OPENAI_KEY_ENV else None
    return Secret(label=f"environment variable {name}", value=value, hosts=hosts)


def default_openai_key() -> Secret | None:
    """The server's own OPENAI_API_KEY, for configs that name no key: bound to OpenAI's hosts
    whether or not it is on the allowlist (it is the operator's, not the config's, choice)."""
    value = os.environ.get(OPENAI_KEY_ENV)
    if not value:
        return None
    return Secret(label=f"environment variable {OPENAI_KEY_ENV}", value=value, hosts=openai_key_hosts())
