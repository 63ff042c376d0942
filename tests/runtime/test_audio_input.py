"""Audio in: any rate / channel count → 16 kHz mono frames of the VAD's size."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.audio import AudioInput, MalformedAudio, level_dbfs, read_wav, wav_bytes


def test_16k_mono_whole_frames_pass_through_without_copy():
    ain = AudioInput(rate=16000, frame_ms=20)
    frame = np.arange(320, dtype=np.int16)
    out = ain.push(frame, 16000, 1)
    assert len(out) == 1 and np.shares_memory(out[0], frame)


def test_odd_sized_chunks_are_regrouped_into_exact_frames():
    ain = AudioInput(rate=16000, frame_ms=30)
    data = np.arange(1000, dtype=np.int16)
    frames = ain.push(data[:333], 16000) + ain.push(data[333:], 16000)
    assert [f.size for f in frames] == [480, 480]
    assert np.array_equal(np.concatenate(frames), data[:960])
    assert ain.push(np.zeros(440, dtype=np.int16), 16000)[0][:40].tolist() == data[960:].tolist()


def test_48k_stereo_is_downmixed_and_resampled_to_16k(speech):
    stereo = speech.samples("Testing one two three.", rate=48000, channels=2)
    mono16 = speech.samples("Testing one two three.", rate=16000, channels=1)
    ain = AudioInput(rate=16000, frame_ms=20)
    frames = []
    for i in range(0, stereo.size - 1920 + 1, 1920):  # 20 ms of 48 kHz stereo
        frames += ain.push(stereo[i:i + 1920].tobytes(), 48000, 2)
    out = np.concatenate(frames)
    assert all(f.size == 320 for f in frames)
    assert abs(out.size - mono16.size) < 16000 * 0.05
    assert abs(level_dbfs(out) - level_dbfs(mono16)) < 3.0  # same loudness after conversion


@pytest.mark.parametrize("data,rate,channels,message", [
    (b"\x00" * 641, 16000, 1, "odd byte count"),
    (b"\x00" * 640, 0, 1, "sample rate"),
    (b"\x00" * 640, 16000.0, 1, "sample rate"),
    (b"\x00" * 640, 400_000, 1, "sample rate"),
    (b"\x00" * 640, 16000, 9, "channel count"),
    (b"\x00" * 642, 16000, 2, "do not divide"),
    (np.zeros(10, dtype=np.float32), 16000, 1, "int16"),
])
def test_malformed_frames_raise_malformed_audio(data, rate, channels, message):
    with pytest.raises(MalformedAudio, match=message):
        AudioInput().push(data, rate, channels)


def test_wav_round_trip(tmp_path):
    samples = (np.sin(np.arange(8000) / 5) * 10000).astype(np.int16)
    path = tmp_path / "a.wav"
    path.write_bytes(wav_bytes(samples, 8000))
    back, rate, channels = read_wav(str(path))
    assert (rate, channels) == (8000, 1) and np.array_equal(back, samples)


def test_level_of_silence_and_full_scale():
    assert level_dbfs(np.zeros(320, dtype=np.int16)) == -120.0
    assert level_dbfs(np.full(320, 32767, dtype=np.int16)) == pytest.approx(0.0, abs=0.01)
