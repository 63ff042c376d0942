"""Secret HTTP header values: by reference to an environment variable or encrypted at rest.

Stored header value forms (in `Tool.http_headers`):
- `"text"`: a plain, non-secret value;
- `{"credential": "name"}`: a named credential (agents.models.Credential), sent only to
  the hosts stored with it;
- `{"env": "NAME"}`: read from the environment variable NAME when the tool is called; NAME
  must be on CREDENTIAL_ENV_ALLOWLIST (OPENAI_API_KEY goes only to OpenAI/OPENAI_BASE_URL);
- `{"encrypted": "<Fernet token>"}`: encrypted with FIELD_ENCRYPTION_KEY (or a key derived
  from SECRET_KEY).
Input may also use `{"secret": "value"}`, which `seal_headers` encrypts. Values of
headers whose names look secret (Authorization, *token*, *key*, ...) are encrypted even
when given as plain text.
"""
from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from .egress import CREDENTIAL_NAME, Secret, env_reference_problem, env_secret
from .errors import ToolDefinitionError, ToolError

REDACTED = "********"
_SENSITIVE = re.compile(r"authorization|cookie|token|secret|key|password|passwd|auth|signature", re.I)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _fernet() -> Fernet:
    key = getattr(settings, "FIELD_ENCRYPTION_KEY", "") or ""
    if key:
        try:
            return Fernet(key.encode() if isinstance(key, str) else key)
        except ValueError:
            # Not a Fernet key: derive one from it.
            return Fernet(base64.urlsafe_b64encode(hashlib.sha256(str(key).encode()).digest()))
    material = b"agents.tools.http-headers:" + str(settings.SECRET_KEY).encode()
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(material).digest()))


def encrypt_secret(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        raise ToolError("the tool's credentials cannot be decrypted; ask an operator to set them again") from None


def is_sensitive_header(name: str) -> bool:
    return bool(_SENSITIVE.search(name))


def seal_headers(headers: Any, *, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Normalise header input for storage: encrypt secrets, check env references.

    A value equal to REDACTED (what the API/admin shows) keeps the previous stored value,
    so an edit round-trip does not wipe secrets.
    """
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise ToolDefinitionError("headers must be an object of header name to value")
    previous = previous or {}
    out: dict[str, Any] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", name):
            raise ToolDefinitionError(f"invalid header name {name!r}")
        if value == REDACTED or value == {"encrypted": REDACTED}:
            if name not in previous:
                raise ToolDefinitionError(f"header {name!r}: no stored secret to keep")
            out[name] = previous[name]
        elif isinstance(value, dict) and set(value) == {"env"}:
            if not isinstance(value["env"], str) or not _ENV_NAME.match(value["env"]):
                raise ToolDefinitionError(f"header {name!r}: env must name an environment variable")
            problem = env_reference_problem(value["env"])
            if problem:
                raise ToolDefinitionError(f"header {name!r}: {problem}")
            out[name] = {"env": value["env"]}
        elif isinstance(value, dict) and set(value) == {"credential"}:
            if not isinstance(value["credential"], str) or not CREDENTIAL_NAME.match(value["credential"]):
                raise ToolDefinitionError(f"header {name!r}: credential must name a stored credential")
            out[name] = {"credential": value["credential"]}
        elif isinstance(value, dict) and set(value) == {"secret"} and isinstance(value["secret"], str):
            out[name] = {"encrypted": encrypt_secret(value["secret"])}
        elif isinstance(value, dict) and set(value) == {"encrypted"} and isinstance(value["encrypted"], str):
            decrypt_secret(value["encrypted"])  # must be ours
            out[name] = {"encrypted": value["encrypted"]}
        elif isinstance(value, str):
            if "\n" in value or "\r" in value:
                raise ToolDefinitionError(f"header {name!r}: value must be one line")
            out[name] = {"encrypted": encrypt_secret(value)} if is_sensitive_header(name) else value
        else:
            raise ToolDefinitionError(
                f'header {name!r}: value must be a string, {{"credential": "name"}}, {{"env": "NAME"}} '
                f'or {{"secret": "value"}}'
            )
    return out


def redact_headers(headers: Any) -> dict[str, Any]:
    """What the API and admin show: env references by name, never a secret value."""
    if not isinstance(headers, dict):
        return {}
    out: dict[str, Any] = {}
    for name, value in headers.items():
        if isinstance(value, dict) and "env" in value:
            out[name] = {"env": value["env"]}
        elif isinstance(value, dict) and "credential" in value:
            out[name] = {"credential": value["credential"]}
        elif isinstance(value, str) and not is_sensitive_header(name):
            out[name] = value
        else:
            out[name] = REDACTED
    return out


def header_credentials(headers: Any) -> list[str]:
    """The credential names a tool's headers reference (to load them before the call)."""
    if not isinstance(headers, dict):
        return []
    return [v["credential"] for v in headers.values() if isinstance(v, dict) and isinstance(v.get("credential"), str)]


def resolve_headers(headers: dict[str, Any] | None, *, host: str = "",
                    credentials: Mapping[str, Secret] | None = None) -> dict[str, str]:
    """The real header values for a request to `host`, at call time. Never log the result.

    A credential or environment variable that may not go to `host` raises SecretNotAllowed
    before any request exists (with no host, only values bound to no host resolve).
    """
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if isinstance(value, str):
            out[name] = value
        elif isinstance(value, dict) and "credential" in value:
            secret = (credentials or {}).get(value["credential"])
            if secret is None:
                raise ToolError(f"header {name}: credential {value['credential']!r} does not exist on this server")
            out[name] = secret.value_for(host)
        elif isinstance(value, dict) and "env" in value:
            env = env_secret(value["env"])
            if env is None:
                raise ToolError("the tool's credentials are not configured on this server")
            out[name] = env.value_for(host)
        elif isinstance(value, dict) and "encrypted" in value:
            out[name] = decrypt_secret(value["encrypted"])
    return out
