"""STT with PocketSphinx and the US-English model its PyPI wheel ships (nothing is downloaded).

Three modes: open dictation with the bundled language model; a JSGF `grammar` (menu-style
agents: what the grammar allows is recognised exactly, where dictation of synthetic speech
drifts badly); or `keyphrases`, a menu given as a list: each utterance is heard as the
closest of the phrases (a grammar of them, with a few carrier words allowed around).
pocketsphinx's own keyword spotting was tried for `keyphrases` and dropped: on utterances
cut by the VAD (silence padding around the speech) it found nothing at any threshold.

Decoding is CPU work of tens of milliseconds (a grammar) to seconds (dictation) per
utterance, so it runs in worker processes, never on the event loop that paces the audio.
Decoders take a few hundred milliseconds to load; each worker keeps one per configuration.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import select
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import level_dbfs, resample_to
from .base import ProviderError, Transcript

RATE = 16_000
# Digital silence is never decoded: from all-zero audio pocketsphinx sometimes makes up a word ("bye").
SILENCE_DBFS = -80.0
CARRIER_WORDS = ("please", "i want", "i'd like", "the", "a", "to", "um", "uh", "yes", "okay")


def keyphrase_grammar(phrases: Sequence[str]) -> str:
    """A JSGF grammar: one of `phrases`, optionally after and before a carrier word."""
    alternatives = " | ".join(" ".join(p.lower().split()) for p in phrases)
    carriers = " | ".join(CARRIER_WORDS)
    return ("#JSGF V1.0;\ngrammar keyphrases;\n"
            f"public <utterance> = [<carrier>] <phrase> [<carrier>];\n<phrase> = {alternatives};\n"
            f"<carrier> = {carriers};\n")


# -- decoding, in worker processes ----------------------------------------------------------
# pocketsphinx's bindings hold the GIL while they decode (measured: a thread decoding 12 s of
# dictation froze the event loop for 15 s), so a thread is not enough to keep the audio path
# running: utterances are decoded by a few decoder processes (pocketsphinx_worker.py), which a
# thread feeds and waits for (pipe I/O releases the GIL). Plain subprocesses rather than
# multiprocessing: spawning re-imports the host's main module, which not every host guards.
WORKER = str(Path(__file__).with_name("pocketsphinx_worker.py"))


def decoder_processes() -> int:
    """POCKETSPHINX_PROCESSES (default 2): utterances decoded at once per host process."""
    raw = os.environ.get("POCKETSPHINX_PROCESSES", "2")
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= 64:
        raise ProviderError("stt", f"POCKETSPHINX_PROCESSES must be an integer 1..64, got {raw!r}", kind="config")
    return n


class _DecoderProcess:
    def __init__(self) -> None:
        # -I: the script's own folder stays off sys.path, or this module would shadow the pocketsphinx package
        self.proc = subprocess.Popen([sys.executable, "-I", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def decode(self, grammar: str | None, audio: bytes, *, timeout_s: float) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps({"grammar": grammar, "bytes": len(audio)}).encode() + b"\n" + audio)
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
            line = self.proc.stdout.readline() if ready else None
        except OSError:
            line = b""
        if line is None:
            self.close()
            raise ProviderError("stt", f"pocketsphinx took longer than {timeout_s:.0f} s", kind="timeout", retryable=True)
        if not line:
            self.close()
            raise ProviderError("stt", "the pocketsphinx decoder process died", retryable=True)
        answer = json.loads(line)
        if "error" in answer:
            raise ProviderError("stt", f"pocketsphinx failed: {answer['error']}", kind="config")
        return str(answer["text"])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class _DecoderPool:
    """Up to decoder_processes() processes, started on demand and reused."""

    def __init__(self) -> None:
        self._idle: list[_DecoderProcess] = []
        self._count = 0
        self._cond = threading.Condition()

    def decode(self, grammar: str | None, audio: bytes) -> str:
        worker = self._take()
        try:
            return worker.decode(grammar, audio, timeout_s=30 + 4 * len(audio) / (2 * RATE))
        finally:
            self._give(worker)

    def _take(self) -> _DecoderProcess:
        with self._cond:
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        return worker
                    self._count -= 1
                if self._count < decoder_processes():
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return _DecoderProcess()
        except OSError as exc:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise ProviderError("stt", f"cannot start the pocketsphinx decoder: {exc}", kind="config") from None

    def _give(self, worker: _DecoderProcess) -> None:
        with self._cond:
            if worker.alive():
                self._idle.append(worker)
            else:
                self._count -= 1
            self._cond.notify()


_pool = _DecoderPool()


class PocketsphinxSTT:
    def __init__(self, *, grammar: str | None = None, keyphrases: Sequence[str] = ()) -> None:
        if grammar is not None and keyphrases:
            raise ValueError("grammar, keyphrases: choose one of them, not both")
        self.keyphrases = tuple(" ".join(p.lower().split()) for p in keyphrases)
        self.grammar = keyphrase_grammar(self.keyphrases) if self.keyphrases else grammar

    async def transcribe(self, pcm: np.ndarray, sample_rate: int) -> Transcript:
        if level_dbfs(pcm) < SILENCE_DBFS:
            return Transcript("", "en")
        audio = self._audio(pcm, sample_rate)
        return self._transcript(await asyncio.to_thread(_pool.decode, self.grammar, audio))

    def transcribe_sync(self, pcm: np.ndarray, sample_rate: int) -> Transcript:
        """The same, blocking (benchmarks, tools)."""
        if level_dbfs(pcm) < SILENCE_DBFS:
            return Transcript("", "en")
        return self._transcript(_pool.decode(self.grammar, self._audio(pcm, sample_rate)))

    @staticmethod
    def _audio(pcm: np.ndarray, sample_rate: int) -> bytes:
        return resample_to(pcm, sample_rate, RATE).astype("<i2", copy=False).tobytes()

    def _transcript(self, text: str) -> Transcript:
        if self.keyphrases:  # the phrase, without the carrier words around it
            text = next((p for p in sorted(self.keyphrases, key=len, reverse=True) if p in text), "")
        return Transcript(re.sub(r"\s+", " ", text).strip(), "en")
