"""No URL with its query string in a log: httpx (HTTP tools) and httpx2 (the OpenAI SDK)
log every request's full URL at INFO, and a query may carry a key."""
from __future__ import annotations

import logging
from typing import Any

REDACTED_QUERY = "?[redacted]"
LOGGERS = ("httpx", "httpx2")


class RedactQuery(logging.Filter):
    """Rewrites URL arguments of a record to keep the path and lose the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(without_query(a) for a in record.args)
        return True


def without_query(arg: Any) -> Any:
    # httpx.URL and httpx2.URL alike, by shape: importing httpx here would slow every start-up
    if hasattr(arg, "copy_with") and hasattr(arg, "query") and not isinstance(arg, (str, bytes)):
        return str(arg.copy_with(query=None)) + (REDACTED_QUERY if arg.query else "")
    return arg


def install() -> None:
    """Idempotent: one filter per logger, whoever calls it first."""
    for name in LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(f, RedactQuery) for f in target.filters):
            target.addFilter(RedactQuery())
