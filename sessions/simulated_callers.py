"""Job metadata `simulated_caller`: a caller inside the worker, on the local transport.

    {"transport": "local", "metadata": {"simulated_caller": {"text": "What's the weather in Paris?",
                                                             "duration_s": 30}}}

The worker hosting the job plays the caller's speech into the session at real-time pace
(`runtime.simulated_caller`), speaks again after each reply, and stores its figures as one
`caller_report` event when its duration is up; then it ends the call (`end_call`, default
true), so the job completes. It needs no socket and no client process: a load test of a
worker process costs only the worker's own work. For load tests and benches only: dispatch
refuses it without the `loadtest` scope (or LOADTEST_ALLOWED), and checks every field first
(`simulated_caller_validate`), so a bad one is a 400 naming it, never a failed job.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import ValidationError

from controlplane.errors import DomainError, JobConfigurationError
from runtime.providers.base import ProviderError
from runtime.simulated_caller import MAX_WAV_BYTES, SimulatedCaller, SimulatedCallerConfig, caller_speech, decode_wav
from sessions.job_context import JobContext

METADATA_KEY = "simulated_caller"
FIELD = f"metadata.{METADATA_KEY}"


def simulated_caller_validate(value: Any) -> SimulatedCallerConfig:
    """The options as given at dispatch; DomainError naming the field that will not do."""
    if not isinstance(value, dict):
        raise DomainError(f"{FIELD} must be an object", field=FIELD)
    try:
        config = SimulatedCallerConfig.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise DomainError(f"{FIELD}{'.' + where if where else ''}: {error['msg']}",
                          field=f"{FIELD}.{where}" if where else FIELD) from None
    if config.wav_base64 is not None:
        wav_field = f"{FIELD}.wav_base64"
        try:
            data = base64.b64decode(config.wav_base64, validate=True)
        except (binascii.Error, ValueError):
            raise DomainError(f"{wav_field} is not valid base64", field=wav_field) from None
        if len(data) > MAX_WAV_BYTES:
            raise DomainError(f"{wav_field}: the WAV is over {MAX_WAV_BYTES} bytes", field=wav_field)
        try:
            decode_wav(data)
        except ValueError as exc:
            raise DomainError(f"{wav_field}: {exc}", field=wav_field) from None
    return config


async def simulated_caller_for(ctx: JobContext) -> SimulatedCaller | None:
    """The job's caller with its speech ready, or None when the job has none."""
    if METADATA_KEY not in ctx.metadata:
        return None
    try:
        config = SimulatedCallerConfig.model_validate(ctx.metadata[METADATA_KEY])
        speech = await caller_speech(config)
    except (ValidationError, ValueError, ProviderError) as exc:  # checked at dispatch; a job stored before may differ
        raise JobConfigurationError(f"{FIELD}: {exc}") from None
    return SimulatedCaller(speech, config)


async def simulated_caller_run(ctx: JobContext, session: Any, caller: SimulatedCaller) -> None:
    """Call until the duration is up (the report is emitted on the session), then hang up."""
    await caller.run(session)
    if caller.config.end_call and not ctx.shutdown_requested:
        ctx.shutdown("completed")
