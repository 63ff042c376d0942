"""The in-process simulated caller (runtime.simulated_caller): it speaks espeak-ng speech into a
voice session at real-time pace, hears the agent's reply through the transport and reports
reply latency and frame lag as one `caller_report` event."""
from __future__ import annotations

import base64
import io
import wave
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from runtime.simulated_caller import (LAG_EDGES_MS, SimulatedCaller, SimulatedCallerConfig, caller_speech, decode_wav,
                                      histogram_pct)
from runtime.transports import LocalTransport

pytestmark = pytest.mark.timeout(60)


def wav_bytes(samples: np.ndarray, rate: int = 16000, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return out.getvalue()


async def test_the_caller_asks_hears_the_reply_and_reports_its_figures(make_session: Any, openai_double: Any,
                                                                      recorder: Any) -> None:
    openai_double.default_transcript = "what is the weather in paris"
    openai_double.default_chat_text = "It is sunny in Paris."
    config = SimulatedCallerConfig(text="What's the weather in Paris?", duration_s=9, reply_done_gap_s=0.5)
    caller = SimulatedCaller(await caller_speech(config), config)
    session = make_session(transport=LocalTransport(on_audio=caller.heard, on_clear=caller.cleared))
    await session.start()
    report = await caller.run(session)

    assert report.utterances >= 1 and report.replies >= 1, report
    assert len(report.reply_ms) == report.replies and all(ms > 0 for ms in report.reply_ms)
    # the STT double heard the caller's speech: the caller's audio reached the pipeline
    assert openai_double.requests_to("/audio/transcriptions")
    assert sum(report.in_lag_counts) > 400  # ~9 s of 20 ms frames pushed
    assert sum(report.out_lag_counts) > 0 and report.out_lag_p99_ms is not None
    assert report.lag_edges_ms[-1] == -1 and len(report.lag_edges_ms) == len(report.in_lag_counts)
    assert recorder.of("caller_report") == [report]


def test_the_caller_speech_comes_from_a_wav_resampled_to_16_khz() -> None:
    tone = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440) * 8000).astype(np.int16)  # 1 s at 8 kHz
    config = SimulatedCallerConfig(wav_base64=base64.b64encode(wav_bytes(tone, rate=8000)).decode())
    import asyncio

    speech = asyncio.run(caller_speech(config))
    assert abs(speech.size - 16000) < 200


def test_a_config_needs_exactly_one_source_and_a_sane_duration() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        SimulatedCallerConfig()
    with pytest.raises(ValidationError, match="exactly one"):
        SimulatedCallerConfig(text="hi", wav_base64="AAAA")
    with pytest.raises(ValidationError, match="duration_s"):
        SimulatedCallerConfig(text="hi", duration_s=0)
    with pytest.raises(ValidationError, match="extra"):
        SimulatedCallerConfig(text="hi", volume=3)


def test_a_wav_that_will_not_do_says_why() -> None:
    with pytest.raises(ValueError, match="mono"):
        decode_wav(wav_bytes(np.zeros(200, dtype=np.int16), channels=2))
    with pytest.raises(ValueError, match="not a WAV"):
        decode_wav(b"RIFF nonsense")
    with pytest.raises(ValueError, match="no audio"):
        decode_wav(wav_bytes(np.zeros(0, dtype=np.int16)))


def test_histogram_percentiles_are_bucket_edges() -> None:
    counts = [0] * len(LAG_EDGES_MS)
    counts[0] = 98  # ≤ 0.5 ms
    counts[LAG_EDGES_MS.index(25.0)] = 2
    assert histogram_pct(counts, 50) == 0.5
    assert histogram_pct(counts, 99) == 25.0
    assert histogram_pct([0] * len(LAG_EDGES_MS), 99) is None
