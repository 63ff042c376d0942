"""From a provider config to the Endpoint its runtime provider uses: base URL and key.

The Django side resolves both before a session starts, so the runtime never reads a secret
and a config can only *name* one:
- a `base_url` from a config passes the address guard (as HTTP tools do) unless its host
  is on PROVIDER_ALLOWED_HOSTS; the operator's OPENAI_BASE_URL is trusted;
- `api_key_credential` sends that credential, only to its allowed hosts;
- `api_key_env` must be on CREDENTIAL_ENV_ALLOWLIST (OPENAI_API_KEY still goes only to
  OpenAI or OPENAI_BASE_URL);
- no key named: the server's OPENAI_API_KEY where it may go, otherwise no key at all.
A refusal becomes the endpoint's `refused`: the session reports it as a config `error`
event on first use and nothing is sent.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from runtime.provider_configs import Endpoint, ProviderConfig
from agents.provider_references import allowed_provider_host
from agents.tools.address_guard import resolve_checked_sync
from agents.tools.egress import (
    DEFAULT_OPENAI_BASE_URL,
    Secret,
    SecretNotAllowed,
    default_openai_key,
    env_secret,
)
from agents.tools.errors import ToolError

KEYED_KINDS = ("llm", "stt", "tts")


def guard_base_url(url: str) -> None:
    """Raise ToolError unless the config's base_url may be called."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if allowed_provider_host(host):
        return
    try:
        resolve_checked_sync(host, parts.port or (443 if parts.scheme == "https" else 80),
                             allow_private=False, what="provider")
    except ToolError as exc:
        raise ToolError(f"base_url host {host} is refused: {exc}; an operator may allow it with "
                        "PROVIDER_ALLOWED_HOSTS") from None


def _named_secret(cfg: ProviderConfig, credentials: Mapping[str, Secret]) -> Secret | None:
    name = getattr(cfg, "api_key_credential", None)
    if name:
        secret = credentials.get(name)
        if secret is None:
            raise SecretNotAllowed(f"credential {name!r} does not exist on this server")
        return secret
    env = getattr(cfg, "api_key_env", None)
    if env:
        secret = env_secret(env)
        if secret is None:
            raise SecretNotAllowed(f"environment variable {env} is not set")
        return secret
    return None


def endpoint_for(kind: str, cfg: ProviderConfig, *, credentials: Mapping[str, Secret]) -> Endpoint:
    configured = str(cfg.base_url) if getattr(cfg, "base_url", None) else None
    base_url = configured or os.environ.get("OPENAI_BASE_URL") or DEFAULT_OPENAI_BASE_URL
    host = urlsplit(base_url).hostname or ""
    try:
        if configured:
            guard_base_url(configured)
        secret = _named_secret(cfg, credentials)
        if secret is not None:
            return Endpoint(base_url=base_url, api_key=secret.value_for(host))
    except ToolError as exc:
        return Endpoint(base_url=base_url, refused=f"{kind}_config: {exc}")
    default = default_openai_key()
    try:
        return Endpoint(base_url=base_url, api_key=default.value_for(host) if default else None)
    except SecretNotAllowed:  # someone else's server: it gets no key rather than ours
        return Endpoint(base_url=base_url)
