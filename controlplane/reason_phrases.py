"""HTTP reason phrases for every status code, in daphne's status line.

ASGI carries only a status code; daphne hands it to Twisted's `setResponseCode`, which
looks the phrase up in `twisted.web.http.RESPONSES`. That table lacks 422, 429 and other
codes of RFC 6585 and later, so a throttled client read "HTTP/1.1 429 Unknown Status".
`install()` adds the standard phrases (Python's `http.HTTPStatus`) it is missing; it leaves
the ones Twisted has alone.
"""
from __future__ import annotations

from http import HTTPStatus


def install() -> int:
    """Fill in the missing phrases; returns how many were added (0 without Twisted)."""
    try:
        from twisted.web.http import RESPONSES  # optional: only daphne (Twisted) serves HTTP here
    except ImportError:
        return 0
    missing = {status.value: status.phrase.encode("ascii") for status in HTTPStatus if status.value not in RESPONSES}
    RESPONSES.update(missing)
    return len(missing)
