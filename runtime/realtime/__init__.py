"""Realtime (speech-to-speech) sessions: the same session surface as the cascaded pipeline,
with an OpenAI Realtime model in place of STT → LLM → TTS. No Django imports.

    session = RealtimeSession(options=RealtimeOptions(...), model=RealtimeModel(...),
                              transport=LocalTransport(), tools=executor, sink=sink)
    await session.start(); session.push_text("hi"); await session.wait_idle(); await session.stop()
"""
from .builder import build_realtime_session
from .connection import RealtimeModel
from .session import RealtimeOptions, RealtimeSession

__all__ = ["RealtimeModel", "RealtimeOptions", "RealtimeSession", "build_realtime_session"]
