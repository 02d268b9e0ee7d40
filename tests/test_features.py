"""asr.features against independent references (librosa, torchaudio's Kaldi fbank), frame counts,
deltas, global CMVN and SpecAugment."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
import torchaudio.compliance.kaldi as kaldi

from asr.features import (FeatureConfig, FeatureExtractor, GlobalCMVN, SpecAugmentConfig,
                          apply_cmvn, spec_augment)

SR = 16000
# Settings shared by the library and the references: 25 ms window (400), 10 ms hop (160),
# FFT size = next power of two (512), slaney mel, centred frames.
STFT = dict(sr=SR, n_fft=512, hop_length=160, win_length=400)


def _wave(seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    """A tone in noise followed by near-silence (exercises MFCC's 80 dB floor)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)
    y[int(0.7 * n):] = 1e-4 * rng.standard_normal(n - int(0.7 * n))
    return y.astype(np.float32)


def _extract(kind: str, y: np.ndarray, **kw) -> np.ndarray:
    return FeatureExtractor(FeatureConfig(kind=kind, **kw))(torch.from_numpy(y)).numpy()


def _librosa_logmel(y: np.ndarray, n_mels: int) -> np.ndarray:
    mel = librosa.feature.melspectrogram(y=y, n_mels=n_mels, power=2.0, **STFT)
    return np.log(mel + 1e-10).T  # (T, F)


def _librosa_mfcc(y: np.ndarray, n_mels: int, n_mfcc: int = 13) -> np.ndarray:
    return librosa.feature.mfcc(y=y, n_mfcc=n_mfcc, n_mels=n_mels, dct_type=2, norm="ortho",
                                **STFT).T  # (T, n_mfcc)


@pytest.mark.parametrize("n_mels", [40, 80])
def test_logmel_matches_librosa_interior(n_mels):
    y = _wave()
    ours, ref = _extract("logmel", y, n_mels=n_mels), _librosa_logmel(y, n_mels)
    assert ours.shape == ref.shape == (1 + len(y) // 160, n_mels)
    # frames 2..T-3 see no padding: any difference here is in the mel/STFT maths
    np.testing.assert_allclose(ours[2:-2], ref[2:-2], rtol=0, atol=1e-3)


@pytest.mark.parametrize("n_mels", [40, 80])
def test_logmel_matches_librosa_all_frames(n_mels):
    """The edge frames depend on how the centred STFT pads the signal; librosa (>= 0.10)
    zero-pads ("constant"), so a "librosa-style" log-mel must too."""
    y = _wave()
    ours, ref = _extract("logmel", y, n_mels=n_mels), _librosa_logmel(y, n_mels)
    err = np.abs(ours - ref).max(axis=1)
    bad = [int(t) for t in np.nonzero(err > 1e-3)[0]]
    assert not bad, f"log-mel differs from librosa at frames {bad} of {len(err)} (max {err.max():.3f})"


def test_mfcc_matches_librosa_interior():
    # librosa: power_to_db(mel, ref=1, amin=1e-10, top_db=80) then DCT-II ortho; torchaudio's
    # MFCC: AmplitudeToDB("power", top_db=80) (also amin 1e-10, clamp at the utterance max
    # - 80 dB) then the same DCT. Values reach ~|300| dB-units, computed in float32 by
    # torchaudio, hence atol 1e-3 (observed ~6e-5).
    y = _wave()
    ours, ref = _extract("mfcc", y, n_mels=40), _librosa_mfcc(y, 40)
    assert ours.shape == ref.shape == (1 + len(y) // 160, 13)
    np.testing.assert_allclose(ours[2:-2], ref[2:-2], rtol=0, atol=1e-3)


def test_mfcc_matches_librosa_all_frames():
    y = _wave()
    ours, ref = _extract("mfcc", y, n_mels=40), _librosa_mfcc(y, 40)
    err = np.abs(ours - ref).max(axis=1)
    bad = [int(t) for t in np.nonzero(err > 1e-3)[0]]
    assert not bad, f"MFCC differs from librosa at frames {bad} of {len(err)} (max {err.max():.3f})"


@pytest.mark.parametrize("n_mels", [23, 80])
def test_fbank_matches_kaldi_on_int16_scale(n_mels):
    y = _wave(0.37)
    ours = _extract("fbank", y, n_mels=n_mels)
    ref = kaldi.fbank(torch.from_numpy(y).unsqueeze(0) * 32768.0, num_mel_bins=n_mels,
                      frame_length=25.0, frame_shift=10.0, dither=0.0, sample_frequency=SR,
                      snip_edges=True).numpy()
    assert ours.shape == ref.shape == (1 + (len(y) - 400) // 160, n_mels)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize("rate,n_mels", [(16000, 80), (8000, 23)])
@pytest.mark.parametrize("warp", [1.0, 0.9, 1.1])
def test_kaldi_fbank_is_torchaudios_with_vtln_warps(rate, n_mels, warp):
    """KaldiFbank (window and mel matrix built once, re^2 + im^2) gives torchaudio's
    compliance.kaldi.fbank frames, VTLN warps included, up to float32 rounding: the tight
    tolerance holds wherever a bin carries energy; the weakest bins (pre-emphasis removes the
    lowest frequencies) get the FFT's absolute rounding, relatively larger."""
    from asr.features import KaldiFbank
    cfg = FeatureConfig(kind="fbank", sample_rate=rate, n_mels=n_mels)
    rng = np.random.default_rng(3)
    y = torch.from_numpy((0.2 * rng.standard_normal(rate * 3 // 4)).astype(np.float32))
    y[rate // 2:] *= 1e-3  # a quiet stretch
    ref = kaldi.fbank(y.unsqueeze(0) * 32768.0, num_mel_bins=n_mels, dither=0.0,
                      energy_floor=0.0, sample_frequency=rate, vtln_warp=warp)
    ours = KaldiFbank(cfg)(y * 32768.0, warp)
    assert ours.shape == ref.shape
    strong = ref > ref.max(dim=1, keepdim=True).values - 9.0  # within ~40 dB of the frame's peak
    assert strong.float().mean() > 0.8
    torch.testing.assert_close(ours[strong], ref[strong], rtol=0, atol=1e-4)
    torch.testing.assert_close(ours, ref, rtol=0, atol=5e-3)
    if warp == 1.0:  # what FeatureExtractor and the streaming front-end compute
        assert torch.equal(FeatureExtractor(cfg)(y), ours)


def test_kaldi_fbank_builds_each_warped_mel_matrix_once(monkeypatch):
    """VTLP draws its warps from a 0.001 grid and KaldiFbank keeps each warp's mel matrix:
    the second utterance at a warp reuses it and gets the same features as a fresh extractor."""
    import asr.features as F
    from asr.config import DataConfig
    from asr.data import draw_wave_aug

    gen = torch.Generator().manual_seed(0)
    warps = {draw_wave_aug(DataConfig(vtlp=[0.9, 1.1]), 16000, gen).warp for _ in range(500)}
    assert all(0.9 <= w <= 1.1 and abs(w * 1000 - round(w * 1000)) < 1e-6 for w in warps)
    assert 100 < len(warps) <= 201  # the grid, well covered

    cfg = FeatureConfig(kind="fbank", n_mels=80)
    fb = F.KaldiFbank(cfg)
    built = []
    real = F.kaldi.get_mel_banks
    monkeypatch.setattr(F.kaldi, "get_mel_banks", lambda *a: built.append(a[-1]) or real(*a))
    y = torch.from_numpy(_wave(0.5)) * 32768.0
    first, again, other = fb(y, 0.937), fb(y, 0.937), fb(y, 1.05)
    assert built == [0.937, 1.05]
    assert torch.equal(first, again) and torch.equal(first, F.KaldiFbank(cfg)(y, 0.937))
    assert not torch.equal(first, other)
    monkeypatch.setattr(F, "MAX_WARPS", len(fb.warped))  # full: new warps are built each time
    built.clear()
    fb(y, 1.06), fb(y, 1.06)
    assert built == [1.06, 1.06] and 1.06 not in fb.warped


def test_fbank_is_not_computed_on_unit_scale():
    # int16 scaling shifts every log-energy by 2*log(32768): a unit-scale fbank would fail this
    y = _wave(0.3)
    unit = kaldi.fbank(torch.from_numpy(y).unsqueeze(0), num_mel_bins=80, dither=0.0).numpy()
    ours = _extract("fbank", y)
    loud = ours[:20]  # the tone part, well above the float floor
    np.testing.assert_allclose(loud - unit[:20], 2 * np.log(32768.0), atol=1e-2)


@pytest.mark.parametrize("kind", ["logmel", "fbank", "mfcc"])
def test_deltas_match_librosa_in_the_interior(kind):
    y = _wave()
    base = _extract(kind, y, n_mels=40)
    full = _extract(kind, y, n_mels=40, deltas=2)
    F = base.shape[1]
    assert full.shape == (base.shape[0], 3 * F)
    assert FeatureConfig(kind=kind, n_mels=40, deltas=2).dim == 3 * F
    np.testing.assert_allclose(full[:, :F], base, atol=1e-5)
    d1 = librosa.feature.delta(base.T, width=5, order=1, axis=-1).T
    d2 = librosa.feature.delta(d1.T, width=5, order=1, axis=-1).T  # delta of delta (HTK/Kaldi)
    scale = np.abs(base).max()
    np.testing.assert_allclose(full[2:-2, F:2 * F], d1[2:-2], atol=1e-5 * scale)
    np.testing.assert_allclose(full[4:-4, 2 * F:], d2[4:-4], atol=1e-5 * scale)
    one = _extract(kind, y, n_mels=40, deltas=1)
    np.testing.assert_allclose(one, full[:, :2 * F], atol=1e-6 * scale)


@pytest.mark.parametrize("kind", ["fbank", "logmel", "mfcc"])
@pytest.mark.parametrize("n", [400, 401, 559, 560, 561, 1600, 4321, 8000])
def test_num_frames_equals_actual_frames(kind, n):
    cfg = FeatureConfig(kind=kind, n_mels=20)
    x = torch.from_numpy(np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1)
    assert FeatureExtractor(cfg)(x).shape == (cfg.num_frames(n), cfg.dim)


@pytest.mark.parametrize("kind, n", [("logmel", 100), ("mfcc", 256), ("fbank", 300)])
def test_audio_shorter_than_a_window_gives_num_frames(kind, n):
    """num_frames promises the frame count for any length, and eval/transcribe do not filter
    short files; the extractor must not crash on a few milliseconds of audio."""
    cfg = FeatureConfig(kind=kind, n_mels=20)
    x = torch.full((n,), 0.01)
    assert FeatureExtractor(cfg)(x).shape == (cfg.num_frames(n), cfg.dim)


def test_global_cmvn_normalises():
    rng = np.random.default_rng(0)
    mean, scale = rng.normal(0, 5, 6), rng.uniform(0.5, 4, 6)
    chunks = [torch.from_numpy((rng.standard_normal((n, 6)) * scale + mean).astype(np.float32))
              for n in (50, 17, 120)]
    cmvn = GlobalCMVN(6)
    for c in chunks:
        cmvn.accumulate(c)
    stats = cmvn.stats()
    allf = torch.cat(chunks)
    assert cmvn.count == 187
    np.testing.assert_allclose(stats["mean"], allf.double().mean(0), atol=1e-5)
    np.testing.assert_allclose(stats["std"], allf.double().std(0, unbiased=False), rtol=1e-5)
    z = apply_cmvn(allf, stats)
    np.testing.assert_allclose(z.mean(0), np.zeros(6), atol=1e-5)
    np.testing.assert_allclose(z.std(0, unbiased=False), np.ones(6), atol=1e-4)


def test_global_cmvn_constant_dim_and_empty():
    cmvn = GlobalCMVN(2)
    with pytest.raises(ValueError):
        cmvn.stats()
    cmvn.accumulate(torch.tensor([[3.0, 1.0], [3.0, 2.0]]))
    stats = cmvn.stats()
    assert torch.isfinite(apply_cmvn(torch.tensor([[3.0, 1.5]]), stats)).all()
    assert stats["std"][0] == pytest.approx(1e-5)


def _masked(x: torch.Tensor, y: torch.Tensor):
    """Columns and rows of ``y`` zeroed entirely (inputs are never 0)."""
    cols = [int(f) for f in torch.nonzero((y == 0).all(0)).flatten()]
    rows = [int(t) for t in torch.nonzero((y == 0).all(1)).flatten()]
    return cols, rows


def _runs(idx: list[int]) -> list[int]:
    runs, prev = [], None
    for i in idx:
        if prev is not None and i == prev + 1:
            runs[-1] += 1
        else:
            runs.append(1)
        prev = i
    return runs


def test_spec_augment_deterministic_for_seed():
    x = torch.rand(200, 40) + 1.0
    cfg = SpecAugmentConfig()
    a = spec_augment(x, cfg, torch.Generator().manual_seed(7))
    b = spec_augment(x, cfg, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    others = [spec_augment(x, cfg, torch.Generator().manual_seed(s)) for s in range(8, 12)]
    assert any(not torch.equal(a, o) for o in others)


def test_spec_augment_only_zeroes_and_respects_widths():
    T, F = 150, 30
    x = torch.rand(T, F) + 1.0  # no zeros in the input
    x_copy = x.clone()
    cfg = SpecAugmentConfig(freq_masks=1, freq_width=7, time_masks=1, time_width=40,
                            time_ratio=0.1)  # time masks capped by 0.1 * 150 = 15 frames
    seen_f, seen_t = 0, 0
    for seed in range(60):
        y = spec_augment(x, cfg, torch.Generator().manual_seed(seed))
        changed = y != x
        assert (y[changed] == 0).all()  # masking only ever writes zeros
        cols, rows = _masked(x, y)
        # every changed value lies in a fully masked column or row
        in_mask = torch.zeros(T, F, dtype=torch.bool)
        in_mask[:, cols] = True
        in_mask[rows, :] = True
        assert not (changed & ~in_mask).any()
        assert len(_runs(cols)) <= 1 and len(cols) <= 7
        assert len(_runs(rows)) <= 1 and len(rows) <= 15
        seen_f, seen_t = max(seen_f, len(cols)), max(seen_t, len(rows))
    assert torch.equal(x, x_copy)  # the input is never modified
    assert seen_f >= 5 and seen_t >= 10  # masks are actually drawn, up to the widths


def test_spec_augment_zero_masks_is_identity_and_narrow_input():
    x = torch.rand(10, 4) + 1
    none = SpecAugmentConfig(freq_masks=0, time_masks=0)
    assert torch.equal(spec_augment(x, none, torch.Generator().manual_seed(0)), x)
    wide = SpecAugmentConfig(freq_masks=2, freq_width=27, time_masks=2, time_width=40)
    y = spec_augment(x, wide, torch.Generator().manual_seed(0))  # F=4 < width: no error
    assert y.shape == x.shape


@pytest.mark.parametrize("kw", [dict(kind="spectrogram"), dict(deltas=3), dict(n_mels=0),
                                dict(hop_ms=0.0)])
def test_feature_config_rejects_bad_values(kw):
    with pytest.raises(ValueError):
        FeatureConfig(**kw)


def test_feature_config_bad_kind_message_names_choices():
    with pytest.raises(ValueError, match="features.kind.*fbank.*logmel.*mfcc.*'plp'"):
        FeatureConfig(kind="plp")


def test_feature_config_derived_sizes():
    cfg = FeatureConfig(sample_rate=8000, win_ms=25, hop_ms=10, kind="mfcc", n_mfcc=20, deltas=1)
    assert (cfg.win_length, cfg.hop_length, cfg.dim) == (200, 80, 40)


@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
def test_utterance_cmvn_is_invariant_to_gain_and_scale(kind):
    y = _wave(0.6, seed=5)
    plain = _extract(kind, y, utterance_cmn=True, utterance_cvn=True)
    assert np.allclose(plain.mean(0), 0, atol=1e-4)
    assert np.allclose(plain.std(0), 1, atol=1e-3)
    # a 20 dB quieter copy: log features shift by a constant, which CMN removes
    quiet = _extract(kind, 0.1 * y, utterance_cmn=True, utterance_cvn=True)
    assert np.allclose(plain, quiet, atol=2e-3)
    with pytest.raises(ValueError, match="utterance_cvn needs"):
        FeatureConfig(utterance_cvn=True)
