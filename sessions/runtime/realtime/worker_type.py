"""Which worker type serves a job: a pure function of the agent's config snapshot.

The fleet's dispatcher calls `required_worker_type(job.config_snapshot)` and only offers
the job to workers whose `worker_type` equals the result (see WORKER_TYPES).
"""
from __future__ import annotations

from typing import Any

WORKER_TYPES = ("voice_agent", "multimodal_agent", "text_agent", "custom")


def _provider(config: Any) -> str:
    if not isinstance(config, dict) or not config:
        return "none"
    return str(config.get("provider") or "none")


def required_worker_type(config_snapshot: dict[str, Any] | None) -> str:
    """`custom` when the snapshot names an entry point (metadata or `entry_point`);
    `multimodal_agent` for a realtime LLM (`openai_realtime`); `voice_agent` when the agent
    has speech in or out (an STT or TTS provider); otherwise `text_agent`."""
    snap = config_snapshot or {}
    metadata = snap.get("metadata") if isinstance(snap.get("metadata"), dict) else {}
    if snap.get("entry_point") or metadata.get("entry_point") or snap.get("worker_type") == "custom":
        return "custom"
    llm = snap.get("llm_config") if isinstance(snap.get("llm_config"), dict) else {}
    if _provider(llm) == "openai_realtime":
        return "multimodal_agent"
    if _provider(snap.get("stt_config")) != "none" or _provider(snap.get("tts_config")) != "none":
        return "voice_agent"
    return "text_agent"


def serves(worker_type: str, config_snapshot: dict[str, Any] | None) -> bool:
    """A worker takes a job only if it serves the job's type."""
    return worker_type == required_worker_type(config_snapshot)
