"""Named credentials as Secrets, and an agent's resolved provider endpoints (Django side)."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from agents.models import Credential
from runtime.provider_configs import Endpoint, NoProviderConfig, ProviderConfigError, parse_provider_config
from agents.provider_endpoints import KEYED_KINDS, endpoint_for
from agents.tools.egress import Secret
from agents.tools.errors import ToolError

log = logging.getLogger(__name__)


def credential_secrets(names: Iterable[str]) -> dict[str, Secret]:
    """The named credentials that exist and decrypt; a missing one is refused where it is used."""
    out: dict[str, Secret] = {}
    for row in Credential.objects.filter(name__in=set(names)):
        try:
            out[row.name] = row.secret()
        except ToolError:
            log.warning("credential %s cannot be decrypted (FIELD_ENCRYPTION_KEY changed?)", row.name)
    return out


def agent_endpoints(config: dict[str, Any]) -> dict[str, Endpoint]:
    """Endpoints for an agent config snapshot's LLM, STT and TTS (blocking: DB and DNS)."""
    parsed = {}
    for kind in KEYED_KINDS:
        try:
            cfg = parse_provider_config(kind, config.get(f"{kind}_config"))
        except ProviderConfigError:
            continue  # build_session reports the config error itself
        if not isinstance(cfg, NoProviderConfig):
            parsed[kind] = cfg
    names = [n for cfg in parsed.values() if (n := getattr(cfg, "api_key_credential", None))]
    secrets = credential_secrets(names)
    return {kind: endpoint_for(kind, cfg, credentials=secrets) for kind, cfg in parsed.items()}
