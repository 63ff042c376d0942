"""The espeak TTS: the real espeak-ng binary, its audio resampled to the session's rate."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from runtime.provider_configs import parse_provider_config
from runtime import AgentSession, SessionOptions
from runtime.audio import level_dbfs
from runtime.providers import EspeakTTS, ProviderError, ScriptedLLM, ScriptRule, build_tts
from runtime.transports import LocalTransport
from tests.runtime.helpers import Recorder

SENTENCE = "The weather in Paris is sunny today."


async def synthesize(tts: EspeakTTS, text: str) -> list[np.ndarray]:
    return [chunk async for chunk in tts.synthesize(text)]


@pytest.mark.parametrize("rate", [16_000, 24_000, 48_000])
async def test_output_is_16_bit_pcm_at_the_configured_rate(rate: int) -> None:
    tts = build_tts(parse_provider_config("tts", {"provider": "espeak", "sample_rate": rate}))
    assert isinstance(tts, EspeakTTS) and tts.sample_rate == rate
    chunks = await synthesize(tts, SENTENCE)
    assert chunks and all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    audio = np.concatenate(chunks)
    native = await synthesize(EspeakTTS(sample_rate=22_050), SENTENCE)  # espeak-ng's own rate: no resampling
    native_s = sum(c.size for c in native) / 22_050
    assert audio.size / rate == pytest.approx(native_s, abs=0.02)  # same duration, so resampled, not relabelled
    assert level_dbfs(audio) > -30  # speech, not silence


async def test_audio_streams_in_several_chunks() -> None:
    chunks = await synthesize(EspeakTTS(chunk_bytes=2205), SENTENCE)
    assert len(chunks) > 5


async def test_voice_rate_and_pitch_change_the_audio() -> None:
    base = np.concatenate(await synthesize(EspeakTTS(), SENTENCE))
    slow = np.concatenate(await synthesize(EspeakTTS(rate_wpm=100), SENTENCE))
    assert slow.size > base.size * 1.3
    high = np.concatenate(await synthesize(EspeakTTS(pitch=90), SENTENCE))
    other = np.concatenate(await synthesize(EspeakTTS(voice="en-us+f3"), SENTENCE))
    assert not np.array_equal(high[: base.size], base[: high.size]) and not np.array_equal(other, base)


async def test_text_that_looks_like_an_option_is_spoken_not_obeyed() -> None:
    audio = np.concatenate(await synthesize(EspeakTTS(), "--version -w /tmp/x.wav"))
    assert audio.size > 0.5 * 24_000


async def test_an_unknown_voice_is_a_config_error_naming_the_voice() -> None:
    with pytest.raises(ProviderError) as err:
        await synthesize(EspeakTTS(voice="zzvoice"), SENTENCE)
    assert err.value.source == "tts" and err.value.kind == "config" and "zzvoice" in str(err.value)


async def test_a_missing_binary_names_the_package() -> None:
    with pytest.raises(ProviderError) as err:
        await synthesize(EspeakTTS(binary="espeak-ng-not-installed"), SENTENCE)
    assert "espeak-ng" in str(err.value) and "apt-get install espeak-ng" in str(err.value)


async def test_in_a_session_each_sentence_is_synthesized_and_played_at_the_tts_rate() -> None:
    rec = Recorder()
    transport = LocalTransport(record_audio=True)
    llm = ScriptedLLM(rules=[ScriptRule(keywords=["hi"], reply="Hello there. The weather is fine today.")])
    session = AgentSession(options=SessionOptions(), llm=llm, tts=EspeakTTS(sample_rate=16_000), sink=rec,
                           transport=transport)
    await session.start()
    try:
        handle = session.push_text("hi")
        assert handle is not None
        await asyncio.wait_for(handle.wait_for_playout(), 20)
    finally:
        await session.stop()
    segments = rec.of("tts_audio")
    assert [s.text for s in segments] == ["Hello there.", "The weather is fine today."]
    assert all(s.duration_ms > 300 for s in segments)
    assert all(s.bytes / 2 / 16_000 * 1000 == pytest.approx(s.duration_ms, abs=0.1) for s in segments)
    assert transport.out_rate == 16_000
    played = transport.recorded_audio()
    assert played.size / 16_000 == pytest.approx(sum(s.duration_ms for s in segments) / 1000, abs=0.1)
    assert rec.first("response_generated").text == "Hello there. The weather is fine today."


async def test_an_interruption_kills_the_espeak_process() -> None:
    tts = EspeakTTS(rate_wpm=80)
    gen = tts.synthesize("This is a long sentence that takes a good while to speak at a slow rate. " * 5)
    first = await gen.__anext__()
    assert first.size
    assert espeak_children() == 1
    await gen.aclose()  # what cancelling the reply does to the iteration
    assert espeak_children() == 0


def espeak_children() -> int:
    """espeak-ng processes whose parent is this test process (zombies included)."""
    n = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        comm, rest = fields[0].split("(", 1)[1], fields[1].split()
        if comm == "espeak-ng" and int(rest[1]) == os.getpid():
            n += 1
    return n
