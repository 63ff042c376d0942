"""Cuts a streamed LLM reply into sentences, so each can be synthesized as it arrives."""
from __future__ import annotations

import re

_END = re.compile(r"[.!?…。！？]+[\"')\]]*(?=\s)|\n+")
_ABBREV = {"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "e.g.", "i.e.", "etc.", "no.", "jr.", "sr."}


class SentenceSegmenter:
    def __init__(self, *, min_chars: int = 8) -> None:
        self.min_chars = min_chars
        self._buf = ""

    def push(self, delta: str) -> list[str]:
        self._buf += delta
        out: list[str] = []
        start = 0
        for m in _END.finditer(self._buf):
            end = m.end()
            piece = self._buf[start:end].strip()
            if len(piece) < self.min_chars:
                continue
            last_word = piece.rsplit(None, 1)[-1].lower()
            if last_word in _ABBREV or re.fullmatch(r"\d+\.", last_word):
                continue
            out.append(piece)
            start = end
        self._buf = self._buf[start:]
        return out

    def flush(self) -> list[str]:
        rest, self._buf = self._buf.strip(), ""
        return [rest] if rest else []
