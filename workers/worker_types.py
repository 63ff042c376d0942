"""Which jobs a worker takes (WorkerOptions.worker_type, seed: WorkerType).

A job needs the worker type its agent's config calls for (`required_worker_type`: a
realtime LLM needs `multimodal_agent`, speech in or out `voice_agent`, neither
`text_agent`, a named entry point `custom`). A worker serves its own type, plus text-only
jobs when its runtime covers them; WORKER_SERVES lists the types explicitly instead.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sessions.runtime.realtime.worker_type import required_worker_type

DEFAULT_SERVES: dict[str, tuple[str, ...]] = {
    "voice_agent": ("voice_agent", "text_agent"),  # the cascaded pipeline runs text agents too
    "multimodal_agent": ("multimodal_agent", "text_agent"),
    "text_agent": ("text_agent",),
    "custom": ("custom",),
}


def served_types(worker_type: str, explicit: Sequence[str] = ()) -> list[str]:
    return list(explicit) if explicit else list(DEFAULT_SERVES.get(worker_type, (worker_type,)))


def job_worker_type(config_snapshot: dict[str, Any] | None) -> str:
    return required_worker_type(config_snapshot)


def worker_serves(worker: Any, job_worker_type: str) -> bool:
    """Blank job type (tool and audio jobs) goes to any worker."""
    if not job_worker_type:
        return True
    return job_worker_type in served_types(worker.worker_type, worker.serves or ())
