"""Domain errors raised by service functions; the API maps them to HTTP statuses."""
from __future__ import annotations


class DomainError(Exception):
    """A request that the domain refuses. `code` is a stable machine-readable name."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class IllegalTransition(Conflict):
    code = "illegal_transition"

    def __init__(self, entity: str, current: str, target: str) -> None:
        super().__init__(f"{entity} cannot go from '{current}' to '{target}'", field="status")
        self.current = current
        self.target = target


class Throttled(DomainError):
    status_code = 429
    code = "throttled"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A dependency needed to carry out the request is down or did not answer in time."""

    status_code = 503
    code = "unavailable"


class JobConfigurationError(Exception):
    """A job failed for a reason that follows it to any worker: its agent's config, the
    deployment's credentials for an external service. Never counts against the circuit
    breaker of the (healthy) worker that reported it."""
