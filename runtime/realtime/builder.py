"""From an agent's parsed `openai_realtime` llm_config and the pipeline's SessionOptions
(VAD, turn and instructions as `sessions.launch` already reads them) to a RealtimeSession."""
from __future__ import annotations

from typing import Any

from runtime.provider_configs import Endpoint, OpenAIRealtimeConfig

from ..interfaces import EventSink, ToolExecutor, Transport
from ..session import SessionOptions
from .connection import RealtimeModel
from .session import RealtimeOptions, RealtimeSession


def build_realtime_session(llm_cfg: OpenAIRealtimeConfig, base: SessionOptions, *, transport: Transport, sink: EventSink | None = None,
                           tools: ToolExecutor | None = None,
                           user_data: dict[str, Any] | None = None,
                           endpoint: Endpoint | None = None) -> RealtimeSession:
    instructions = llm_cfg.instructions or base.instructions
    options = RealtimeOptions(instructions=instructions, session_id=base.session_id, agent_id=base.agent_id,
                              turn_detection=llm_cfg.turn_detection, vad=base.vad,
                              turn=base.turn, output_frame_ms=base.output_frame_ms,
                              audio_event_interval_s=base.audio_event_interval_s)
    return RealtimeSession(options=options, model=RealtimeModel.from_config(llm_cfg, endpoint), transport=transport,
                           tools=tools, sink=sink, user_data=user_data)
