"""A pocketsphinx decoder process: reads utterances on stdin, answers transcripts.

Started by the pocketsphinx STT provider as `python <this file>` (so it imports only
pocketsphinx and the standard library — neither our packages nor the host's main module).
Protocol, one request at a time: a JSON line `{"grammar": str | null, "bytes": n}` followed by
n bytes of 16 kHz mono PCM16; the answer is a JSON line `{"text": ...}` or `{"error": ...}`.
The process keeps one decoder per grammar and exits when its stdin closes.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, BinaryIO

RATE = 16_000
SEARCH = "main"


def build_decoder(grammar: str | None, *, log_path: str | None = None) -> Any:
    # imported here: every host process imports this module (through the provider), but only
    # the decoder process needs the library, which takes a while to load
    import pocketsphinx

    # bestpath off: with it, grammar search on synthetic speech returned prefixes ("what's the weather in");
    # batch CMN: each utterance is normalised on its own, so a result never depends on earlier ones
    kwargs: dict[str, Any] = {"samprate": RATE, "bestpath": False, "cmn": "batch",
                              "loglevel": "ERROR" if log_path else "FATAL"}
    if log_path:
        kwargs["logfn"] = log_path
    if grammar is not None:
        kwargs["lm"] = None
    decoder = pocketsphinx.Decoder(**kwargs)
    if grammar is not None:
        decoder.add_jsgf_string(SEARCH, grammar)
        decoder.activate_search(SEARCH)
    return decoder


def decode(decoder: Any, audio: bytes) -> str:
    decoder.start_utt()
    decoder.process_raw(audio, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    decoders: dict[str | None, Any] = {}
    while header := requests.readline():
        try:
            request = json.loads(header)
            audio = requests.read(int(request["bytes"]))
            grammar = request.get("grammar")
            if grammar not in decoders:
                decoders[grammar] = build_decoder(grammar)
            answer: dict[str, str] = {"text": decode(decoders[grammar], audio)}
        except Exception as exc:  # noqa: BLE001 - reported to the caller, the process lives on
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        answers.write(json.dumps(answer).encode() + b"\n")
        answers.flush()


def main() -> None:
    # the protocol gets its own copy of stdout; fd 1 then points at stderr, so whatever the C
    # library prints cannot corrupt an answer
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
