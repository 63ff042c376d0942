"""Save-time checks of what a provider config names: a clear field error now for a
reference that can never work (the send-time checks are in `provider_endpoints`).

Kept apart from `provider_endpoints` so the models import no session runtime."""
from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from django.conf import settings

from runtime.provider_configs import ProviderConfig
from agents.tools.address_guard import is_public_address
from agents.tools.egress import DEFAULT_OPENAI_BASE_URL, env_reference_problem, host_matches


def allowed_provider_host(host: str) -> bool:
    """PROVIDER_ALLOWED_HOSTS: base_url hosts the operator lets past the address guard."""
    return host_matches(host, getattr(settings, "PROVIDER_ALLOWED_HOSTS", []))


def reference_problems(cfg: ProviderConfig, *, credential_hosts: Mapping[str, tuple[str, ...]]) -> list[str]:
    """What a config names that can never work, for a validation error at save time.

    (DNS names in base_url are checked when a session starts: a lookup now proves little.)
    """
    problems: list[str] = []
    env = getattr(cfg, "api_key_env", None)
    if env:
        problem = env_reference_problem(env)
        if problem:
            problems.append(f"api_key_env: {problem}")
    configured = str(cfg.base_url) if getattr(cfg, "base_url", None) else None
    host = urlsplit(configured).hostname or "" if configured else ""
    if configured and not allowed_provider_host(host):
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if (literal is not None and not is_public_address(literal)) or host.lower() in ("localhost", ""):
            problems.append(f"base_url: host {host or '(none)'} is a private or loopback address; an operator "
                            "may allow it with PROVIDER_ALLOWED_HOSTS")
    name = getattr(cfg, "api_key_credential", None)
    if name:
        hosts = credential_hosts.get(name)
        if hosts is None:
            problems.append(f"api_key_credential: no credential named {name!r} (GET /api/v1/credentials/ lists them)")
        else:
            target = host or urlsplit(os.environ.get("OPENAI_BASE_URL") or DEFAULT_OPENAI_BASE_URL).hostname or ""
            if not host_matches(target, hosts):
                problems.append(f"api_key_credential: credential {name!r} may not be sent to {target} "
                                f"(allowed: {', '.join(hosts)})")
    return problems
