"""STT with PocketSphinx and the US-English model its PyPI wheel ships (nothing is downloaded).

Three modes: open dictation with the bundled language model; a JSGF `grammar` (menu-style
agents: what the grammar allows is recognised exactly, where dictation of synthetic speech
drifts badly); or `keyphrases`, a menu given as a list: each utterance is heard as the
closest of the phrases (a grammar of them, with a few carrier words allowed around).
pocketsphinx's own keyword spotting was tried for `keyphrases` and dropped: on utterances
cut by the VAD (silence padding around the speech) it found nothing at any threshold.

Decoding is CPU work of tens to hundreds of milliseconds per utterance, so it runs on a
worker thread, never on the event loop that paces the audio. Decoders take a few hundred milliseconds to load; idle ones are
pooled per configuration and reused by every session of the process.
"""
from __future__ import annotations

import asyncio
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..audio import resample_to
from .base import ProviderError, Transcript

RATE = 16_000
_SEARCH = "main"


CARRIER_WORDS = ("please", "i want", "i'd like", "the", "a", "to", "um", "uh", "yes", "okay")


def keyphrase_grammar(phrases: Sequence[str]) -> str:
    """A JSGF grammar: one of `phrases`, optionally after and before a carrier word."""
    alternatives = " | ".join(" ".join(p.lower().split()) for p in phrases)
    carriers = " | ".join(CARRIER_WORDS)
    return ("#JSGF V1.0;\ngrammar keyphrases;\n"
            f"public <utterance> = [<carrier>] <phrase> [<carrier>];\n<phrase> = {alternatives};\n"
            f"<carrier> = {carriers};\n")


@dataclass(frozen=True, slots=True)
class SphinxSetup:
    """What a decoder is built for; also the key of its pool."""

    grammar: str | None = None


def _decoder(setup: SphinxSetup, log_path: str | None = None) -> Any:
    import pocketsphinx  # optional heavy C extension, loaded on first use

    # bestpath off: with it, grammar search on synthetic speech returned prefixes ("what's the weather in")
    kwargs: dict[str, Any] = {"samprate": RATE, "bestpath": False, "cmn": "batch", "loglevel": "ERROR" if log_path else "FATAL"}
    if log_path:
        kwargs["logfn"] = log_path
    if setup.grammar is not None:
        kwargs["lm"] = None
    decoder = pocketsphinx.Decoder(**kwargs)
    if setup.grammar is not None:
        decoder.add_jsgf_string(_SEARCH, setup.grammar)
        decoder.activate_search(_SEARCH)
    return decoder


class _Pool:
    def __init__(self) -> None:
        self._idle: dict[SphinxSetup, list[Any]] = {}
        self._lock = threading.Lock()

    def take(self, setup: SphinxSetup) -> Any:
        with self._lock:
            idle = self._idle.get(setup)
            if idle:
                return idle.pop()
        return _decoder(setup)

    def give(self, setup: SphinxSetup, decoder: Any) -> None:
        with self._lock:
            self._idle.setdefault(setup, []).append(decoder)


_pool = _Pool()


class PocketsphinxSTT:
    def __init__(self, *, grammar: str | None = None, keyphrases: Sequence[str] = ()) -> None:
        if grammar is not None and keyphrases:
            raise ValueError("grammar, keyphrases: choose one of them, not both")
        self.keyphrases = tuple(" ".join(p.lower().split()) for p in keyphrases)
        self.setup = SphinxSetup(keyphrase_grammar(self.keyphrases) if self.keyphrases else grammar)

    async def transcribe(self, pcm: np.ndarray, sample_rate: int) -> Transcript:
        return await asyncio.to_thread(self.transcribe_sync, pcm, sample_rate)

    def transcribe_sync(self, pcm: np.ndarray, sample_rate: int) -> Transcript:
        audio = resample_to(pcm, sample_rate, RATE).astype("<i2", copy=False)
        try:
            decoder = _pool.take(self.setup)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ProviderError("stt", f"pocketsphinx could not load its model: {exc}", kind="config") from None
        try:
            decoder.start_utt()
            decoder.process_raw(audio.tobytes(), full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            text = hyp.hypstr if hyp is not None else ""
            if self.keyphrases:  # the phrase, without the carrier words around it
                text = next((p for p in sorted(self.keyphrases, key=len, reverse=True) if p in text), "")
        except (RuntimeError, ValueError) as exc:
            raise ProviderError("stt", f"pocketsphinx failed: {exc}", kind="unknown") from None
        _pool.give(self.setup, decoder)
        return Transcript(re.sub(r"\s+", " ", text).strip(), "en")


# -- validation (the agent's config schema calls these when a config is saved) ---------------
_check_lock = threading.Lock()


@lru_cache(maxsize=1)
def _checker() -> tuple[Any, str]:
    """A model-less decoder whose error log says *why* a grammar failed (the exception does not)."""
    fd, log_path = tempfile.mkstemp(prefix="pocketsphinx-check-", suffix=".log")
    os.close(fd)
    return _decoder(SphinxSetup(_EMPTY_GRAMMAR), log_path=log_path), log_path


_EMPTY_GRAMMAR = "#JSGF V1.0;\ngrammar check;\npublic <any> = hello;\n"


def unknown_words(words: Sequence[str]) -> list[str]:
    """Words the bundled pronunciation dictionary does not have (in the order given)."""
    with _check_lock:
        decoder, _ = _checker()
        return [w for w in dict.fromkeys(words) if decoder.lookup_word(w) is None]


@lru_cache(maxsize=64)
def grammar_problems(grammar: str) -> tuple[str, ...]:
    """Why pocketsphinx cannot use this JSGF grammar; () when it can."""
    with _check_lock:
        decoder, log_path = _checker()
        start = os.path.getsize(log_path)
        try:
            decoder.add_jsgf_string("check", grammar)
            failed = False
        except (ValueError, RuntimeError):
            failed = True
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            fh.seek(start)
            logged = [_clean(line) for line in fh if line.startswith("ERROR")]
        try:
            decoder.remove_search("check")
        except (KeyError, RuntimeError, ValueError):
            pass
    if logged:
        return tuple(dict.fromkeys(logged))
    return ("not a grammar pocketsphinx can use",) if failed else ()


def _clean(line: str) -> str:
    # 'ERROR: "fsg_search.c", line 138: The word 'zzqx' is missing in the dictionary' → the message
    return re.sub(r'^ERROR: "[^"]+", line \d+: ', "", line.strip())
