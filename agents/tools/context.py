"""RunContext: what a tool sees of the call that is running it."""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

logger = logging.getLogger("agents.tools")


@dataclass(frozen=True, slots=True)
class FunctionCall:
    call_id: str
    name: str
    arguments: str  # raw JSON as the model produced it


@dataclass(slots=True)
class RunContext:
    """Passed to a tool whose signature has a parameter annotated `RunContext`.

    It is never part of the schema the model sees. Lives as long as one execution.
    """

    function_call: FunctionCall
    session: Any = None
    speech_handle: Any = None
    user_data: dict[str, Any] = field(default_factory=dict)
    session_id: str = ""
    agent_id: str = ""
    execution_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    timeout_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def __post_init__(self) -> None:
        if not self.function_call.name:
            raise ValueError("function_call must have a name")
        if self.timeout_at is not None and self.timeout_at <= self.started_at:
            raise ValueError("timeout_at must be after started_at")

    @classmethod
    def create(
        cls,
        *,
        call_id: str,
        name: str,
        arguments: str,
        timeout_ms: int | None = None,
        **kwargs: Any,
    ) -> "RunContext":
        started = datetime.now(timezone.utc)
        timeout_at = started + timedelta(milliseconds=timeout_ms) if timeout_ms else None
        return cls(
            function_call=FunctionCall(call_id=call_id, name=name, arguments=arguments),
            started_at=started,
            timeout_at=timeout_at,
            **kwargs,
        )

    @property
    def call_id(self) -> str:
        return self.function_call.call_id

    @property
    def tool_name(self) -> str:
        return self.function_call.name

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self._t0) * 1000.0

    @property
    def remaining_ms(self) -> float | None:
        if self.timeout_at is None:
            return None
        delta = self.timeout_at - datetime.now(timezone.utc)
        return max(0.0, delta.total_seconds() * 1000.0)

    def log_fields(self) -> dict[str, Any]:
        return {
            "tool": self.function_call.name,
            "call_id": self.function_call.call_id,
            "execution_id": self.execution_id,
            "session_id": self.session_id,
            "agent_id": self.agent_id,
        }

    def log(self, message: str, *args: Any, level: int = logging.INFO, **fields: Any) -> None:
        """Log with the execution's fields attached (as `extra`, and in the message)."""
        extra = {**self.log_fields(), **fields}
        tag = " ".join(f"{k}={v}" for k, v in extra.items() if v not in ("", None))
        logger.log(level, f"{message} [{tag}]", *args, extra={"tool_execution": extra})

    def record_metric(self, name: str, value: float) -> None:
        """Record a tool-defined metric; the executor reports them with the result."""
        self.metrics[name] = self.metrics.get(name, 0.0) + float(value)
