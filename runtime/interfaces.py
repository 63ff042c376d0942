"""The small interfaces through which the session runtime meets the outside world.

The runtime is plain asyncio + numpy and imports nothing from Django. The Django side
(event persistence, tool registry, LiveKit credentials) implements these protocols and
hands them to the runtime when a session starts.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, runtime_checkable

from runtime.tool_types import ToolCall, ToolInvocation, ToolResult


@runtime_checkable
class EventSink(Protocol):
    """Receives every session event. Must not block: the pipeline never waits on I/O here.

    `event` is a typed model (see `runtime.events`) with `type`, `at` and a
    payload; `model_dump(mode="json")` gives the payload the envelope's `data` carries.
    """

    def emit(self, event: Any) -> None: ...


@runtime_checkable
class ToolExecutor(Protocol):
    def schemas(self) -> list[dict[str, Any]]:
        """OpenAI tool schemas (`{"type": "function", "function": {...}}`) for the LLM."""
        ...

    async def execute(self, call: ToolCall, invocation: ToolInvocation) -> ToolResult:
        """Run one call. Never raises for tool failures: they become error results."""
        ...


@runtime_checkable
class Transport(Protocol):
    """Where a session's audio and text come from and go to (LiveKit room, local memory).

    `connect` starts delivering input by calling the session's `push_audio`, `push_text`
    and participant hooks. `write_audio` gets one paced output frame (int16 mono at
    `sample_rate`) and must not block; the buffer is reused after the call returns.
    A transport whose sink can stall (a native queue fed across threads) may set
    `output_lead_frames`: the playout then writes that many frames ahead of real time
    (the first at once, so the reply does not start later), and `clear_audio` drops them and
    returns how many seconds of written audio it dropped unheard (None or 0: it holds none),
    so an interrupted reply's history keeps only what the listener heard.
    """

    name: str

    async def connect(self, session: Any) -> None: ...

    def write_audio(self, frame: Any, sample_rate: int) -> None: ...

    def clear_audio(self) -> float | None: ...

    async def send_text(self, text: str) -> None: ...

    async def publish_transcript(self, text: str, *, speaker: str, final: bool) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class AudioTap(Protocol):
    """Gets a copy-on-need view of every audio frame of the call, e.g. to record it.

    `user_audio` gets each user-input frame as the agent hears it, `agent_audio` each
    agent-output frame as it is played out: int16 mono ndarrays at `sample_rate`. Both are
    called on the session's event loop, per frame: they must return at once (hand the bytes
    to another thread) and must copy what they keep, since buffers are reused.
    """

    def user_audio(self, frame: Any, sample_rate: int) -> None: ...

    def agent_audio(self, frame: Any, sample_rate: int) -> None: ...


# What a session hands its stages instead of itself: the emit function (events to the sink
# and listeners) and the spawner (a task the session keeps and cancels at stop).
Emit = Callable[[Any], None]
Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]
