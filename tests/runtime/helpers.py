"""What the runtime and realtime tests build on: real speech (espeak-ng + sox), an event
recorder, a tiny tool executor, and waiting for the agent to speak."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from runtime.audio import read_wav
from runtime.tool_types import ToolCall, ToolInvocation, ToolResult
from tests.helpers import wait_for_async


# -- real speech ------------------------------------------------------------------------
class SpeechMaker:
    """WAVs of real synthetic speech, made once per test session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[tuple[str, int, int], Path] = {}
        if not shutil.which("espeak-ng") or not shutil.which("sox"):
            raise RuntimeError("the runtime tests need espeak-ng and sox (apt-get install espeak-ng sox)")

    def wav(self, text: str, *, rate: int = 16000, channels: int = 1) -> Path:
        key = (text, rate, channels)
        if key not in self._cache:
            raw = self.root / f"raw_{len(self._cache)}.wav"
            out = self.root / f"speech_{len(self._cache)}_{rate}_{channels}.wav"
            subprocess.run(["espeak-ng", "-s", "160", "-w", str(raw), text], check=True, capture_output=True)
            subprocess.run(["sox", str(raw), "-b", "16", "-e", "signed-integer", "-r", str(rate),
                            "-c", str(channels), str(out)], check=True, capture_output=True)
            self._cache[key] = out
        return self._cache[key]

    def samples(self, text: str, *, rate: int = 16000, channels: int = 1) -> np.ndarray:
        samples, r, c = read_wav(str(self.wav(text, rate=rate, channels=channels)))
        assert (r, c) == (rate, channels)
        return samples


# -- events -----------------------------------------------------------------------------
class Recorder:
    """An EventSink that keeps every event with a monotonic timestamp."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.times: list[float] = []

    def emit(self, event: Any) -> None:
        self.events.append(event)
        self.times.append(time.monotonic())

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def of(self, type_: str) -> list[Any]:
        return [e for e in self.events if e.type == type_]

    def first(self, type_: str) -> Any:
        found = self.of(type_)
        assert found, f"no {type_} event among {self.types()}"
        return found[0]

    def time_of(self, type_: str) -> float:
        for e, t in zip(self.events, self.times):
            if e.type == type_:
                return t
        raise AssertionError(f"no {type_} event among {self.types()}")

    async def wait_for(self, type_: str, timeout: float = 10.0, count: int = 1) -> Any:
        await wait_for_async(lambda: len(self.of(type_)) >= count, timeout=timeout,
                             what=lambda: f"{type_} (x{count}); got {self.types()}")
        return self.of(type_)[count - 1]


# -- tools ------------------------------------------------------------------------------
class DictToolExecutor:
    """A ToolExecutor over plain functions: name → fn(**arguments) (sync or async)."""

    def __init__(self, funcs: dict[str, Callable[..., Any]]) -> None:
        self.funcs = funcs
        self.calls: list[tuple[ToolCall, ToolInvocation]] = []

    def schemas(self) -> list[dict[str, Any]]:
        return [{"type": "function", "function": {"name": n, "description": f"{n} (test tool)",
                                                  "parameters": {"type": "object", "properties": {}}}}
                for n in self.funcs]

    async def execute(self, call: ToolCall, invocation: ToolInvocation) -> ToolResult:
        self.calls.append((call, invocation))
        start = time.perf_counter()
        fn = self.funcs.get(call.name)
        if fn is None:
            return ToolResult(call.call_id, call.name, f"unknown tool {call.name}", True, "unknown_tool")
        try:
            out = fn(**json.loads(call.arguments or "{}"))
            if asyncio.iscoroutine(out):
                out = await out
        except Exception as exc:  # noqa: BLE001
            return ToolResult(call.call_id, call.name, str(exc), True, "exception",
                              (time.perf_counter() - start) * 1000)
        return ToolResult(call.call_id, call.name, out if isinstance(out, str) else json.dumps(out),
                          duration_ms=(time.perf_counter() - start) * 1000)


async def wait_frames_out(transport: Any, frames: int, *, timeout: float = 10.0) -> None:
    """Until the agent has played `frames` 20 ms frames out of the transport."""
    await wait_for_async(lambda: transport.frames_out >= frames, timeout=timeout,
                         what=lambda: f"{frames} frames out (the agent played {transport.frames_out})")


async def stop_open(sessions: Iterable[Any]) -> None:
    """A fixture's teardown: stop each of its sessions that started and is still open."""
    for s in sessions:
        if s._closed is not None and not s.closed:
            await s.stop("test_teardown")
