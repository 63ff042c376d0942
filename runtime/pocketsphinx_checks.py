"""Checks of a pocketsphinx STT config against the bundled model, run when a config is saved.

Plain Python (no Django): the config schema (`runtime.provider_configs`) calls these. The
runtime's provider (`runtime.providers.pocketsphinx`) does the decoding; this
module only asks a decoder whether it knows the words and can use the grammar.
"""
from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_EMPTY_GRAMMAR = "#JSGF V1.0;\ngrammar check;\npublic <any> = hello;\n"
_check_lock = threading.Lock()


@lru_cache(maxsize=1)
def _checker() -> tuple[Any, str]:
    """A model-less decoder whose error log says *why* a grammar failed (the exception does not)."""
    # imported here: loading the library and its model takes a while, and only configs that
    # use pocketsphinx need it
    import pocketsphinx

    fd, log_path = tempfile.mkstemp(prefix="pocketsphinx-check-", suffix=".log")
    os.close(fd)
    # the settings of a session's grammar decoder (runtime/providers/pocketsphinx_worker.py),
    # so a check answers what a session's decoder would
    decoder = pocketsphinx.Decoder(samprate=16_000, bestpath=False, cmn="batch", lm=None,
                                   loglevel="ERROR", logfn=log_path)
    decoder.add_jsgf_string("main", _EMPTY_GRAMMAR)
    decoder.activate_search("main")
    return decoder, log_path


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
