"""The voice session runtime: plain asyncio + numpy, no Django.

    session = AgentSession(options=SessionOptions(...), llm=..., stt=..., tts=...,
                           tools=executor, sink=sink, transport=LocalTransport())
    await session.start(); session.push_text("hi"); await session.wait_idle(); await session.stop()
"""
from .session import AgentSession, AudioState, SessionOptions
from .speech import SpeechHandle
from .turns import TurnOptions
from .vad import VADOptions

__all__ = ["AgentSession", "AudioState", "SessionOptions", "SpeechHandle", "TurnOptions", "VADOptions"]
