"""VAD with hysteresis over real speech, and the utterance buffer."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.provider_configs import WebRTCVADConfig
from runtime.vad import VAD, UtteranceBuffer, webrtc_mode


def _run(vad: VAD, audio: np.ndarray):
    n = vad.frame_samples
    out = []
    for i in range(0, audio.size - n + 1, n):
        tr = vad.process(audio[i:i + n])
        if tr is not None:
            out.append((i // n, tr))
    return out


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_speech_between_silences_gives_one_start_and_one_end(speech, frame_ms):
    words = speech.samples("Hello, this is a test of the voice detector.")
    silence = np.zeros(16000, dtype=np.int16)
    audio = np.concatenate([silence, words, silence])
    vad = VAD(WebRTCVADConfig(frame_ms=frame_ms, min_speech_ms=100, min_silence_ms=400))
    transitions = _run(vad, audio)
    assert [t.kind for _, t in transitions] == ["start", "end"]
    (start_i, start), (end_i, end) = transitions
    assert 0.9 < start_i * frame_ms / 1000 < 1.5  # speech begins after the first second
    assert end.silence_ms >= 400 and end.speech_ms > 1000
    assert end_i * frame_ms / 1000 > 1 + words.size / 16000 * 0.8


def test_pauses_shorter_than_min_silence_do_not_end_speech(speech):
    a = speech.samples("First part.")
    pause = np.zeros(16000 * 3 // 10, dtype=np.int16)  # 300 ms
    audio = np.concatenate([np.zeros(8000, np.int16), a, pause, a, np.zeros(16000, np.int16)])
    kinds = [t.kind for _, t in _run(VAD(WebRTCVADConfig(min_silence_ms=600)), audio)]
    assert kinds == ["start", "end"]
    kinds_short = [t.kind for _, t in _run(VAD(WebRTCVADConfig(min_silence_ms=100)), audio)]
    assert kinds_short.count("start") >= 2


def test_silence_and_quiet_noise_never_start_speech():
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(16000 * 3) * 30).astype(np.int16)
    assert _run(VAD(WebRTCVADConfig(sensitivity=0.2)), noise) == []
    assert _run(VAD(WebRTCVADConfig()), np.zeros(16000 * 2, dtype=np.int16)) == []


def test_sensitivity_maps_onto_webrtcvad_modes():
    assert [webrtc_mode(s) for s in (0.0, 0.34, 0.5, 0.67, 1.0)] == [3, 2, 2, 1, 0]


def test_webrtcvad_frame_rules_are_enforced():
    with pytest.raises(ValueError, match="10, 20 or 30 ms"):
        VAD(WebRTCVADConfig.model_construct(frame_ms=25))  # unvalidated: the config would refuse 25 itself
    with pytest.raises(ValueError, match="8/16/32/48 kHz"):
        VAD(WebRTCVADConfig(), sample_rate=22050)


def test_utterance_buffer_keeps_padding_before_speech():
    buf = UtteranceBuffer(rate=16000, padding_ms=40, frame_samples=320)
    for v in (1, 2, 3):
        buf.push(np.full(320, v, dtype=np.int16))
    buf.begin()
    buf.push(np.full(320, 9, dtype=np.int16))
    out = buf.take()
    assert out.size == 640 + 320
    assert out[:320].tolist() == [2] * 320 and out[320:640].tolist() == [3] * 320 and out[-1] == 9
    assert not buf.active and buf.size == 0
