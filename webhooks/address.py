"""The HTTP tools' address guard (agents.tools.http), applied to webhook URLs."""
from __future__ import annotations

import asyncio

from agents.tools.errors import ToolError
from agents.tools.http import AddressNotAllowed, allow_private_default, pinned_target

REFUSED = ("The URL resolves to a private, loopback or link-local address; "
           "set TOOLS_ALLOW_PRIVATE_ADDRESSES=true to allow it.")


def url_refusal(url: str) -> str | None:
    """Why the guard refuses `url` now, or None. For create/update (sync views, no running loop)."""
    try:
        asyncio.run(pinned_target(url, allow_private=allow_private_default()))
    except AddressNotAllowed:
        return REFUSED
    except ToolError:
        return "The URL's host name does not resolve."
    return None
