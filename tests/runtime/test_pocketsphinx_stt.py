"""The pocketsphinx STT on real espeak-ng speech: the demo grammar recognises the demo's
phrases exactly; keyphrases are spotted; dictation runs; decoding stays off the event loop."""
from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import numpy as np
import pytest

from agents.demo_config import GRAMMAR
from runtime.provider_configs import TurnConfig, WebRTCVADConfig, parse_provider_config
from runtime import AgentSession, SessionOptions
from runtime.audio import read_wav
from runtime.providers import PocketsphinxSTT, ScriptedLLM, ScriptRule, build_stt
from runtime.providers.fake import FakeTTS
from runtime.transports import LocalTransport
from tests.runtime.helpers import Recorder

# (what espeak-ng says, what the demo grammar must hear)
DEMO_PHRASES = [
    ("What's the weather in Paris?", "what's the weather in paris"),
    ("What is the weather like in Paris today?", "what is the weather like in paris today"),
    ("How is the weather in Tokyo?", "how is the weather in tokyo"),
    ("What is the weather in New York?", "what is the weather in new york"),
    ("Hello", "hello"),
    ("What can you do?", "what can you do"),
    ("Thank you", "thank you"),
]


def espeak_wav(tmp: Path, text: str, *, rate_wpm: int = 140) -> tuple[np.ndarray, int]:
    """US-English espeak-ng speech at its own 22.05 kHz (the STT resamples)."""
    out = tmp / f"{abs(hash((text, rate_wpm)))}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(rate_wpm), "-w", str(out), text], check=True)
    samples, rate, channels = read_wav(str(out))
    assert channels == 1
    return samples, rate


@pytest.fixture(scope="module")
def demo_stt() -> PocketsphinxSTT:
    stt = build_stt(parse_provider_config("stt", {"provider": "pocketsphinx", "grammar": GRAMMAR}))
    assert isinstance(stt, PocketsphinxSTT)
    return stt


@pytest.mark.parametrize("rate_wpm", [140, 175])
@pytest.mark.parametrize(("spoken", "heard"), DEMO_PHRASES)
async def test_the_demo_grammar_recognises_the_demo_phrases_exactly(
        demo_stt: PocketsphinxSTT, tmp_path: Path, spoken: str, heard: str, rate_wpm: int) -> None:
    samples, rate = espeak_wav(tmp_path, spoken, rate_wpm=rate_wpm)
    result = await demo_stt.transcribe(samples, rate)
    assert result.text == heard and result.language == "en"


async def test_open_dictation_uses_the_bundled_model(tmp_path: Path) -> None:
    stt = build_stt(parse_provider_config("stt", {"provider": "pocketsphinx"}))
    samples, rate = espeak_wav(tmp_path, "What is the weather like in Paris today?")
    text = (await stt.transcribe(samples, rate)).text  # type: ignore[union-attr]
    # dictation of synthetic speech drifts (the point), but the model is loaded and hears words
    assert text.startswith("what is the weather")


async def test_keyphrases_hear_each_utterance_as_the_closest_phrase(tmp_path: Path) -> None:
    stt = build_stt(parse_provider_config("stt", {"provider": "pocketsphinx",
                                                  "keyphrases": ["Weather in Paris", "weather in  tokyo", "hello"]}))
    heard = {}
    for spoken in ("What's the weather in Paris?", "How is the weather in Tokyo?", "Hello"):
        samples, rate = espeak_wav(tmp_path, spoken)
        padded = np.concatenate([np.zeros(rate // 2, np.int16), samples, np.zeros(rate // 2, np.int16)])
        heard[spoken] = ((await stt.transcribe(samples, rate)).text,  # type: ignore[union-attr]
                         (await stt.transcribe(padded, rate)).text)  # type: ignore[union-attr]
    assert heard == {"What's the weather in Paris?": ("weather in paris",) * 2,
                     "How is the weather in Tokyo?": ("weather in tokyo",) * 2,
                     "Hello": ("hello",) * 2}


async def test_silence_is_heard_as_nothing(demo_stt: PocketsphinxSTT) -> None:
    assert (await demo_stt.transcribe(np.zeros(16_000, dtype=np.int16), 16_000)).text == ""


async def test_the_event_loop_keeps_running_while_dictation_is_decoded(tmp_path: Path) -> None:
    # pocketsphinx holds the GIL while it decodes: in a thread this froze the loop for the whole
    # decode (seconds for this much dictation); in a decoder process the loop goes on ticking
    samples, rate = espeak_wav(tmp_path, "What is the weather like in Paris today? " * 3)
    stt = PocketsphinxSTT()
    ticks = 0
    decoding = True

    async def ticker() -> None:
        nonlocal ticks
        while decoding:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        text = (await stt.transcribe(samples, rate)).text
    finally:
        decoding = False
        await task
    assert text.startswith("what is the weather")
    assert ticks >= 20, ticks


def test_the_decoder_processes_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.providers import ProviderError
    from runtime.providers.pocketsphinx import decoder_processes

    monkeypatch.setenv("POCKETSPHINX_PROCESSES", "3")
    assert decoder_processes() == 3
    for bad in ("0", "many"):
        monkeypatch.setenv("POCKETSPHINX_PROCESSES", bad)
        with pytest.raises(ProviderError, match="POCKETSPHINX_PROCESSES"):
            decoder_processes()


async def test_a_spoken_question_becomes_the_user_turn_in_a_session(demo_stt: PocketsphinxSTT, tmp_path: Path) -> None:
    samples, rate = espeak_wav(tmp_path, "What is the weather like in Paris today?")
    rec = Recorder()
    transport = LocalTransport()
    llm = ScriptedLLM(rules=[ScriptRule(keywords=["paris"], reply="Paris it is.")])
    session = AgentSession(options=SessionOptions(vad=WebRTCVADConfig(min_silence_ms=300),
                                                  turn=TurnConfig(min_endpointing_delay_ms=100)),
                           llm=llm, stt=demo_stt, tts=FakeTTS(ms_per_char=2), sink=rec, transport=transport)
    await session.start()
    try:
        await transport.play(samples, rate, realtime=False, tail_silence_ms=1000)
        await rec.wait_for("response_generated", timeout=10)
    finally:
        await session.stop()
    assert rec.first("stt_result").text == "what is the weather like in paris today"
    assert rec.first("turn_ended").text == "what is the weather like in paris today"
    assert rec.first("response_generated").text == "Paris it is."
