"""WorkerOptions from the seed: how a worker node connects and how much it takes on.

Validated at worker start; a bad value stops the worker with a message naming the field.
"""
from __future__ import annotations

import logging
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from sessions.job_context import DEFAULT_ENTRY_POINT
from workers.worker_types import WorkerType


# Sessions per worker process, from bench/capacity.py (one `manage.py start` process with the
# production event sink, PostgreSQL, Redis, daphne and a socket per session, on a 2-core
# machine it shares with them and with the OpenAI double): at N = 100 every goal of issue 13
# held (frame lag p99 12/15.5 ms, reply p99 307 ms against 326 at N = 10, event → WebSocket
# p99 89 ms, nothing lost); at 200 it did not (lag p99 80/200 ms, reply p99 1.4 s). 80 leaves
# headroom; a worker with a core of its own may be given more (WORKER_MAX_CONCURRENT_JOBS).
DEFAULT_MAX_CONCURRENT_JOBS = 80


class WorkerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agent_name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")] = "controlplane"
    server_url: str
    api_key: SecretStr
    api_secret: SecretStr
    entry_point: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$")] = DEFAULT_ENTRY_POINT
    max_concurrent_jobs: Annotated[int, Field(ge=1, le=1000)] = DEFAULT_MAX_CONCURRENT_JOBS
    worker_type: WorkerType = WorkerType.VOICE_AGENT
    region: Annotated[str, Field(max_length=64)] = ""
    drain_timeout: Annotated[int, Field(gt=0, le=86_400)] = 300
    health_check_port: Annotated[int, Field(ge=0, le=65_535)] = 0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # the job types this worker takes; empty = its own type (+ text agents), see worker_types
    serves: tuple[WorkerType, ...] = ()

    @field_validator("server_url")
    @classmethod
    def _websocket_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("ws", "wss") or not parsed.hostname:
            raise ValueError("server_url must be a ws:// or wss:// URL with a host")
        return value

    @field_validator("api_key", "api_secret")
    @classmethod
    def _non_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must be a non-empty string")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def python_log_level(self) -> int:
        return logging.getLevelName(self.log_level)
