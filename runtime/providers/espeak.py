"""TTS through the espeak-ng binary (Debian package `espeak-ng`), run as an asyncio subprocess.

One process per sentence (the reply generator already cuts the reply into sentences and
keeps the next one synthesizing while the current one plays). The text goes in on stdin,
never on the command line, so no text can be taken for an option. espeak-ng writes a WAV
stream at its own rate (22.05 kHz); the audio is resampled to `sample_rate` as it arrives
and yielded in chunks. Cancelling the iteration (an interruption) kills the process.
"""
from __future__ import annotations

import asyncio
import shutil
import struct
from collections.abc import AsyncIterator

import numpy as np

from ..audio import StreamResampler
from .base import ProviderError

ESPEAK_BINARY = "espeak-ng"
INSTALL_HINT = "install the Debian package espeak-ng (apt-get install espeak-ng; scripts/run does it when run as root)"
_HEADER = 44  # RIFF/WAVE header of espeak-ng's --stdout stream: PCM16 mono, sizes unknown


class EspeakTTS:
    def __init__(self, *, voice: str = "en-us", rate_wpm: int = 160, pitch: int = 50, sample_rate: int = 24_000,
                 chunk_bytes: int = 4410, binary: str = ESPEAK_BINARY) -> None:
        self.voice = voice
        self.rate_wpm = rate_wpm
        self.pitch = pitch
        self.sample_rate = sample_rate
        self.chunk_bytes = chunk_bytes
        self.binary = binary

    async def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        if not text.strip():
            return
        exe = shutil.which(self.binary)
        if exe is None:
            raise ProviderError("tts", f"{self.binary} is not installed: {INSTALL_HINT}", kind="config")
        proc = await asyncio.create_subprocess_exec(
            exe, "-v", self.voice, "-s", str(self.rate_wpm), "-p", str(self.pitch), "--stdout",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            proc.stdin.write(text.encode())
            proc.stdin.close()
            header = await proc.stdout.read(_HEADER)
            if len(header) < _HEADER:
                await proc.wait()
                detail = (await proc.stderr.read()).decode(errors="replace").strip() or f"exit status {proc.returncode}"
                raise ProviderError("tts", f"espeak-ng produced no audio (voice {self.voice!r}): {detail}", kind="config")
            rate_in = _wav_rate(header)
            resampler = StreamResampler(rate_in, self.sample_rate)
            carry = b""
            while data := await proc.stdout.read(self.chunk_bytes):
                data, carry = carry + data, b""
                if len(data) % 2:  # a sample split across reads
                    data, carry = data[:-1], data[-1:]
                out = resampler.push(np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False))
                if out.size:
                    yield out
            tail = resampler.flush()
            if tail.size:
                yield tail
            if await proc.wait() != 0:
                detail = (await proc.stderr.read()).decode(errors="replace").strip()
                raise ProviderError("tts", f"espeak-ng failed with exit status {proc.returncode}: {detail}")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def _wav_rate(header: bytes) -> int:
    if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        raise ProviderError("tts", "espeak-ng wrote something that is not a WAV stream", kind="garbage")
    channels, rate, _, _, bits = struct.unpack_from("<HIIHH", header, 22)
    if channels != 1 or bits != 16:
        raise ProviderError("tts", f"espeak-ng wrote {channels}-channel {bits}-bit audio; expected mono 16-bit",
                            kind="garbage")
    return int(rate)
