"""The bridge from an agent's config snapshot to a runtime session.

The worker's default entry point (`sessions.entrypoints:agent_session`) and the console
command call `build_session(...)`, then `await run_session(session)` (or drive the session
themselves). No Django imports: the caller loads the agent and builds the event sink and
the tool executor.

    snapshot = agent.config_snapshot()   # instructions, tools, llm/stt/tts/vad/turn config, metadata
    session = build_session(snapshot, sink=sink, tools=executor, transport=transport,
                            session_id=str(row.id), agent_id=agent.agent_id)
    reason = await run_session(session)  # returns when the session has ended

`endpoints` ("llm"/"stt"/"tts" → Endpoint) are the base URLs and keys the control plane
resolved (`agents.credentials.agent_endpoints`); every caller that runs a stored agent
passes them, so a config can only name a secret, never send one where it may not go.
Without them (the runtime used alone) the configs' own base_url/api_key_env apply.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.provider_configs import (
    NoProviderConfig,
    OpenAIRealtimeConfig,
    ProviderConfigError,
    WebRTCVADConfig,
    parse_provider_config,
    parse_turn_config,
)
from runtime import AgentSession, SessionOptions
from runtime.interfaces import EventSink, ToolExecutor, Transport
from runtime.providers import Endpoint, build_llm, build_stt, build_tts
from runtime.realtime import build_realtime_session

__all__ = ["ConfigError", "build_session", "run_session", "session_options"]


class ConfigError(ValueError):
    """The snapshot cannot run on the pipeline runtime; the message names the field."""


def session_options(config: dict[str, Any], *, session_id: str = "", agent_id: str = "") -> SessionOptions:
    try:
        llm = parse_provider_config("llm", config.get("llm_config"))
        vad = parse_provider_config("vad", config.get("vad_config"))
        turn = parse_turn_config(config.get("turn_config"))
    except ProviderConfigError as exc:
        raise ConfigError(str(exc)) from None
    return SessionOptions(
        instructions=str(config.get("instructions") or ""), session_id=session_id, agent_id=agent_id,
        # no VAD provider ("none"): the webrtcvad settings' defaults, switched off
        vad=vad if isinstance(vad, WebRTCVADConfig) else WebRTCVADConfig(enabled=False), turn=turn,
        vision=bool(getattr(llm, "vision", False)))


def build_session(config: dict[str, Any], *, transport: Transport, sink: EventSink | None = None,
                  tools: ToolExecutor | None = None, session_id: str = "", agent_id: str = "",
                  user_data: dict[str, Any] | None = None,
                  endpoints: Mapping[str, Endpoint] | None = None) -> AgentSession:
    """An unstarted AgentSession for an agent config snapshot (a RealtimeSession, with the
    same surface, when the LLM is `openai_realtime`).

    Raises ConfigError for a config the runtime cannot run."""
    try:
        llm_cfg = parse_provider_config("llm", config.get("llm_config"))
        stt_cfg = parse_provider_config("stt", config.get("stt_config"))
        tts_cfg = parse_provider_config("tts", config.get("tts_config"))
    except ProviderConfigError as exc:
        raise ConfigError(str(exc)) from None

    def endpoint(kind: str) -> Endpoint | None:
        if endpoints is None:
            return None
        # given endpoints but none for this provider: refuse rather than fall back to the config's
        return endpoints.get(kind) or Endpoint(base_url="", refused=f"{kind}_config: no endpoint was resolved")

    if isinstance(llm_cfg, OpenAIRealtimeConfig):  # a speech-to-speech model: the realtime runtime
        data = dict(user_data or {})
        data.setdefault("metadata", dict(config.get("metadata") or {}))
        return build_realtime_session(  # type: ignore[return-value]
            llm_cfg, session_options(config, session_id=session_id, agent_id=agent_id), transport=transport,
            sink=sink, tools=tools, user_data=data, endpoint=endpoint("llm"))
    stt = None if isinstance(stt_cfg, NoProviderConfig) else build_stt(stt_cfg, endpoint("stt"))
    tts = None if isinstance(tts_cfg, NoProviderConfig) else build_tts(tts_cfg, endpoint("tts"))
    data = dict(user_data or {})
    data.setdefault("metadata", dict(config.get("metadata") or {}))
    return AgentSession(options=session_options(config, session_id=session_id, agent_id=agent_id),
                        llm=build_llm(llm_cfg, endpoint("llm")), stt=stt, tts=tts, tools=tools, sink=sink,
                        transport=transport, user_data=data)


async def run_session(session: AgentSession, *, greeting: str | None = None) -> str:
    """Start the session, optionally greet, and return the stop reason once it has ended."""
    await session.start()
    if greeting:
        session.say(greeting)
    return await session.wait_closed()

