"""Which jobs a worker takes (WorkerOptions.worker_type, seed: WorkerType).

A job needs the worker type its agent's config calls for (`required_worker_type`: a
realtime LLM needs `multimodal_agent`, speech in or out `voice_agent`, neither
`text_agent`, a named entry point `custom`). A worker serves its own type, plus text-only
jobs when its runtime covers them; WORKER_SERVES lists the types explicitly instead.
"""
from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any


class WorkerType(StrEnum):
    """The one list of worker types: WorkerOptions, the Worker row and the dispatcher use it."""

    VOICE_AGENT = "voice_agent"
    MULTIMODAL_AGENT = "multimodal_agent"
    TEXT_AGENT = "text_agent"
    CUSTOM = "custom"


DEFAULT_SERVES: dict[str, tuple[WorkerType, ...]] = {
    # the cascaded pipeline runs text agents too
    WorkerType.VOICE_AGENT: (WorkerType.VOICE_AGENT, WorkerType.TEXT_AGENT),
    WorkerType.MULTIMODAL_AGENT: (WorkerType.MULTIMODAL_AGENT, WorkerType.TEXT_AGENT),
    WorkerType.TEXT_AGENT: (WorkerType.TEXT_AGENT,),
    WorkerType.CUSTOM: (WorkerType.CUSTOM,),
}


def _provider(config: Any) -> str:
    if not isinstance(config, dict) or not config:
        return "none"
    return str(config.get("provider") or "none")


def required_worker_type(config_snapshot: dict[str, Any] | None) -> WorkerType:
    """`custom` when the snapshot names an entry point (metadata or `entry_point`);
    `multimodal_agent` for a realtime LLM (`openai_realtime`); `voice_agent` when the agent
    has speech in or out (an STT or TTS provider); otherwise `text_agent`."""
    snap = config_snapshot or {}
    metadata = snap.get("metadata") if isinstance(snap.get("metadata"), dict) else {}
    if snap.get("entry_point") or metadata.get("entry_point") or snap.get("worker_type") == WorkerType.CUSTOM:
        return WorkerType.CUSTOM
    llm = snap.get("llm_config") if isinstance(snap.get("llm_config"), dict) else {}
    if _provider(llm) == "openai_realtime":
        return WorkerType.MULTIMODAL_AGENT
    if _provider(snap.get("stt_config")) != "none" or _provider(snap.get("tts_config")) != "none":
        return WorkerType.VOICE_AGENT
    return WorkerType.TEXT_AGENT


def served_types(worker_type: str, explicit: Sequence[str] = ()) -> list[str]:
    return list(explicit) if explicit else list(DEFAULT_SERVES.get(worker_type, (worker_type,)))


def worker_serves(worker: Any, job_worker_type: str) -> bool:
    """Blank job type (tool and audio jobs) goes to any worker."""
    if not job_worker_type:
        return True
    return job_worker_type in served_types(worker.worker_type, worker.serves or ())
