"""asr.audio: reading every supported format, mono mix-down, resampling, speed perturbation, errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio import load_audio, read_audio, resample, speed_perturb
from asr.errors import UserError
from conftest import make_wav


def _signal(sr: int = 16000, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234 * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


@pytest.mark.parametrize("fmt, subtype, ext, atol", [
    ("WAV", "PCM_U8", "wav", 1.0 / 127),  # 8-bit: one quantisation step
    ("WAV", "PCM_16", "wav", 1.0 / 32767),
    ("WAV", "PCM_24", "wav", 1e-6),
    ("WAV", "PCM_32", "wav", 1e-8),
    ("WAV", "FLOAT", "wav", 0.0),
    ("FLAC", "PCM_16", "flac", 1.0 / 32767),
    ("NIST", "PCM_16", "sph", 1.0 / 32767),
])
def test_lossless_formats_read_back_close_to_source(tmp_path, fmt, subtype, ext, atol):
    y = _signal()
    path = tmp_path / f"x.{ext}"
    sf.write(str(path), y, 16000, format=fmt, subtype=subtype)
    assert sf.info(str(path)).format == fmt  # really written in that container
    w = load_audio(path, 16000)
    assert w.dtype == torch.float32 and w.shape == (len(y),)
    np.testing.assert_allclose(w.numpy(), y, rtol=0, atol=atol + 1e-7)


@pytest.mark.parametrize("fmt, subtype, ext", [("OGG", "VORBIS", "ogg"),
                                               ("MP3", "MPEG_LAYER_III", "mp3")])
def test_lossy_formats_read_back_similar(tmp_path, fmt, subtype, ext):
    y = _signal()
    path = tmp_path / f"x.{ext}"
    sf.write(str(path), y, 16000, format=fmt, subtype=subtype)
    w = load_audio(path, 16000).numpy()
    assert abs(len(w) - len(y)) <= 1152  # at most one MP3 frame of encoder padding
    n = min(len(w), len(y))
    w, ref = w[:n], y[:n]
    corr = np.corrcoef(w, ref)[0, 1]
    snr = 10 * np.log10(np.sum(ref ** 2) / np.sum((w - ref) ** 2))
    assert corr > 0.99 and snr > 20, (corr, snr)


def test_stereo_is_mixed_to_mono_by_mean(tmp_path):
    data = make_wav(tmp_path / "st.wav", seconds=0.3, channels=2, subtype="FLOAT")  # 440 + 880 Hz
    assert data.shape == (4800, 2)
    w = load_audio(tmp_path / "st.wav", 16000).numpy()
    np.testing.assert_allclose(w, (data[:, 0] + data[:, 1]) / 2, atol=1e-7)
    assert not np.allclose(w, data[:, 0], atol=1e-3)  # really a mix, not channel 0


def test_read_audio_segment(tmp_path):
    y = make_wav(tmp_path / "a.wav", seconds=1.0, subtype="FLOAT", noise=0.1)
    seg, sr = read_audio(tmp_path / "a.wav", offset=0.25, duration=0.5)
    np.testing.assert_array_equal(seg[:, 0], y[4000:12000])


@pytest.mark.parametrize("orig_sr, freq", [(8000, 1000.0), (44100, 3000.0), (22050, 440.0)])
def test_resampling_length_and_frequency(tmp_path, orig_sr, freq):
    make_wav(tmp_path / "a.wav", seconds=1.0, sr=orig_sr, freq=freq, subtype="FLOAT")
    w = load_audio(tmp_path / "a.wav", 16000).numpy()
    assert len(w) == 16000
    assert abs(_peak_hz(w, 16000) - freq) <= 2.0
    # the tone keeps its level (the anti-alias filter passes it)
    assert np.sqrt(np.mean(w[1000:-1000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_resample_identity_when_rates_match():
    x = torch.randn(1000)
    assert resample(x, 16000, 16000) is x


@pytest.mark.parametrize("factor, expected", [(0.9, 17800), (1.1, 14500), (0.5, 32000),
                                              (2.0, 8000), (0.95, 16800)])
def test_speed_perturb_lengths(factor, expected):
    x = torch.randn(16000)
    y = speed_perturb(x, 16000, factor)
    assert len(y) == expected
    assert len(y) == pytest.approx(16000 / factor, rel=0.005)  # within the documented rounding


def test_speed_perturb_changes_pitch():
    t = torch.arange(16000) / 16000
    x = torch.sin(2 * torch.pi * 1000 * t)
    y = speed_perturb(x, 16000, 1.1).numpy()
    assert _peak_hz(y, 16000) == pytest.approx(1000 * 16000 / 14500, abs=3.0)


def test_speed_perturb_identity_and_range():
    x = torch.randn(100)
    assert speed_perturb(x, 16000, 1.0) is x
    for bad in (0.4, 2.5):
        with pytest.raises(ValueError):
            speed_perturb(x, 16000, bad)


def test_missing_file_is_user_error(tmp_path):
    with pytest.raises(UserError, match="not found.*nope.wav"):
        load_audio(tmp_path / "nope.wav", 16000)


def test_non_audio_bytes_is_user_error(tmp_path):
    p = tmp_path / "text.wav"
    p.write_bytes(b"this is certainly not a RIFF header " * 20)
    with pytest.raises(UserError, match="text.wav"):
        load_audio(p, 16000)


def test_zero_length_wav_is_user_error(tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(str(p), np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")
    assert p.stat().st_size > 0  # a valid header with no samples
    with pytest.raises(UserError, match="no samples.*empty.wav"):
        load_audio(p, 16000)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples_are_user_error(tmp_path, bad):
    y = _signal()
    y[123] = bad
    p = tmp_path / "nan.wav"
    sf.write(str(p), y, 16000, subtype="FLOAT")
    with pytest.raises(UserError, match="NaN or Inf.*nan.wav"):
        load_audio(p, 16000)
