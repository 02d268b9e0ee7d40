"""Speaker normalisation: per-speaker CMVN at training and at test time, with its fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.config import load_config
from asr.data import FeatureSource
from asr.errors import UserError
from asr.features import FeatureConfig, apply_cmvn, utterance_cmvn
from asr.inference import Recognizer
from asr.manifest import Utterance, read_manifest, write_manifest
from asr.train import Trainer
from conftest import TONE_SR, make_tone_corpus, random_tone_text, tone_word_audio

SMALL = ["model.hidden=16", "model.layers=1", "model.dropout=0.0", "features.n_mels=23",
         "data.max_batch=4", "train.threads=1", "train.amp=false", "train.epochs=1"]


def _channel(y: np.ndarray, gain: float, tilt: float) -> np.ndarray:
    """Another microphone: a gain and a first-order spectral tilt (y[n] - tilt * y[n-1])."""
    out = y.astype(np.float64).copy()
    out[1:] -= tilt * y[:-1]
    return (gain * out).astype(np.float32)


def _two_voices(tmp_path: Path, n: int = 6) -> tuple[list[Utterance], list[Utterance]]:
    """The same n sentences said by voice A and by voice B (A through another channel)."""
    rng = np.random.default_rng(0)
    a, b = [], []
    for i in range(n):
        text = random_tone_text(rng)
        y = tone_word_audio(text, TONE_SR, rng)
        for voice, wave, out in (("A", y, a), ("B", _channel(y, 0.2, 0.9), b)):
            path = tmp_path / f"{voice}{i}.wav"
            sf.write(str(path), wave, TONE_SR, subtype="FLOAT")
            out.append(Utterance(f"{voice}{i}", str(path), len(y) / TONE_SR, text, voice))
    return a, b


def test_two_channels_become_indistinguishable_after_speaker_cmvn(tmp_path: Path) -> None:
    a, b = _two_voices(tmp_path)
    for kind in ("fbank", "logmel", "mfcc"):
        plain = FeatureSource(FeatureConfig(kind=kind, sample_rate=TONE_SR, n_mels=23), None,
                              cache=True)
        norm = FeatureSource(FeatureConfig(kind=kind, sample_rate=TONE_SR, n_mels=23,
                                           speaker_cmvn=True), None, cache=True)
        norm.speakers = norm.speaker_stats(a + b)
        assert set(norm.speakers) == {("A", 1.0), ("B", 1.0)}
        before = np.mean([(plain(x) - plain(y)).abs().mean().item() for x, y in zip(a, b)])
        after = np.mean([(norm(x) - norm(y)).abs().mean().item() for x, y in zip(a, b)])
        scale = np.mean([norm(x).abs().mean().item() for x in a])
        # raw: the channel moves every band by ~log(0.2 * tilt response); normalised: the
        # two voices differ by a few percent of the features' own size
        assert after < 0.1 * scale, (kind, after, scale)
        assert after < 0.05 * before, (kind, before, after)
        # a voice's speaker statistics pool all its utterances: not each utterance's own
        own = np.mean([(norm(x) - utterance_cmvn(norm.raw(x))).abs().mean().item() for x in a])
        assert own > 0.01


def test_unknown_speaker_falls_back_to_the_utterance_statistics(tmp_path: Path) -> None:
    a, _ = _two_voices(tmp_path, 2)
    src = FeatureSource(FeatureConfig(sample_rate=TONE_SR, n_mels=23, speaker_cmvn=True), None,
                        cache=False)
    anon = Utterance("x", a[0].audio_path, a[0].duration, "", "")
    torch.testing.assert_close(src(anon), utterance_cmvn(src.raw(anon)))
    # a speaker absent from the statistics (e.g. a new voice at test time) does the same
    torch.testing.assert_close(src(a[0]), utterance_cmvn(src.raw(a[0])))
    wave = torch.from_numpy(sf.read(a[0].audio_path, dtype="float32")[0])
    torch.testing.assert_close(src.of_wave(wave), utterance_cmvn(src.raw(a[0])))


def test_exclusive_with_utterance_cmn() -> None:
    with pytest.raises(ValueError, match="speaker_cmvn and features.utterance_cmn"):
        FeatureConfig(speaker_cmvn=True, utterance_cmn=True)


def test_training_and_decoding_use_each_speakers_statistics(tmp_path: Path) -> None:
    train = make_tone_corpus(tmp_path, n_utts=6, seed=1, name="train", n_speakers=2)
    dev = make_tone_corpus(tmp_path, n_utts=4, seed=2, name="dev", n_speakers=2)
    cfg = load_config(None, [*SMALL, "features.speaker_cmvn=true",
                             "data.speed_perturb=[0.9,1.0]"])
    tr = Trainer(cfg, str(train), str(dev), tmp_path / "exp", device="cpu")
    # training: one set of statistics per (speaker, speed), each speed-perturbed copy its own
    assert set(tr.source.speakers) == {(s, v) for s in ("spk0", "spk1") for v in (0.9, 1.0)}
    u = tr.examples[0].utt
    spk = tr.source.speakers[(u.speaker, 0.9)]
    expect = apply_cmvn(apply_cmvn(tr.source.raw(u, 0.9), spk), tr.source.cmvn)
    torch.testing.assert_close(tr.source(u, 0.9), expect)
    # global CMVN is computed over the speaker-normalised features: ~zero mean, unit spread
    feats = torch.cat([tr.source.base(e.utt) for e in tr.examples])
    torch.testing.assert_close(tr.source.cmvn["mean"], feats.mean(0), atol=1e-4, rtol=1e-4)
    tr.fit()
    rec = Recognizer.from_file(tmp_path / "exp" / "model.pt")
    assert rec.cfg.features.speaker_cmvn
    utts = read_manifest(dev)
    rec.emissions(utts).__next__()
    # decoding pools each dev speaker's utterances (statistics from the manifest decoded)
    assert set(rec.source.speakers) == {("spk0", 1.0), ("spk1", 1.0)}
    stats = rec.source.speaker_stats([x for x in utts if x.speaker == "spk0"])
    want = apply_cmvn(apply_cmvn(rec.source.raw(utts[0]), stats[("spk0", 1.0)]), rec.cmvn)
    lp0, _ = rec.forward([want])
    (ids_b, lp_b, lens_b), = list(rec.emissions(utts))  # one batch, in length order
    row = ids_b.index(utts[0].id)
    torch.testing.assert_close(lp_b[row, :int(lens_b[row])], lp0[0, :int(lens_b[row])])


# --- VTLP in training, VTLN warp search at test time ---------------------------------------


def _voice(d: Path, scale: float, speaker: str, n: int = 6) -> list[Utterance]:
    """Tone sentences whose every tone is ``scale`` times higher: a shorter or longer 'vocal
    tract' (the same timing, formant-like peaks moved along the frequency axis)."""
    import random

    import test_align

    base = dict(test_align.FREQ)
    test_align.FREQ.update({k: v * scale for k, v in base.items()})
    try:
        rng, out = random.Random(3), []
        for i in range(n):
            x, text, _ = test_align.tone_sentence(rng, 2)
            path = d / f"{speaker}{i}.wav"
            sf.write(str(path), x, test_align.SR)
            out.append(Utterance(f"{speaker}{i}", str(path), len(x) / test_align.SR, text,
                                 speaker))
        return out
    finally:
        test_align.FREQ.update(base)


def test_warp_search_undoes_each_speakers_frequency_shift(tmp_path: Path) -> None:
    from asr.adapt import search_warps, warp_grid
    from test_align import tone_recognizer

    rec = tone_recognizer()
    utts = (_voice(tmp_path, 1.0, "same") + _voice(tmp_path, 1.15, "high")
            + _voice(tmp_path, 0.87, "low"))
    grid = warp_grid([0.8, 1.2], 0.025)
    assert grid[0] == 0.8 and grid[-1] == 1.2 and 1.0 in grid and len(grid) == 17
    warps = search_warps(rec, utts, grid)
    # Kaldi's warp moves content up by its factor: 1.15x tones come back with ~1/1.15 = 0.87
    assert 0.95 <= warps["same"] <= 1.05
    assert 0.85 <= warps["high"] <= 0.925
    assert 1.1 <= warps["low"] <= 1.2
    assert rec.source.warps == {}  # the search leaves the source as it found it


def test_a_vtlp_model_searches_warps_when_decoding_a_manifest(tmp_path: Path) -> None:
    import copy

    from test_align import tone_recognizer

    rec = copy.deepcopy(tone_recognizer())
    rec.cfg = copy.deepcopy(rec.cfg)
    rec.cfg.data.vtlp = [0.8, 1.2]
    rec.vtln = True  # opt-in (asr evaluate --vtln)
    utts = _voice(tmp_path, 1.0, "same", 3) + _voice(tmp_path, 1.15, "high", 3)
    anon = Utterance("anon", utts[-1].audio_path, utts[-1].duration, "", "")
    ids = [i for batch, _, _ in rec.emissions(utts + [anon]) for i in batch]
    assert sorted(ids) == sorted(u.id for u in utts + [anon])
    warps = rec.source.warps
    assert set(warps) == {"same", "high", "utt:anon"}  # an unknown speaker is its own
    assert warps["high"] < 0.95 and warps["utt:anon"] < 0.95
    # the decoded features are the warped ones
    high = utts[-1]
    warped = rec.source.extract(torch.from_numpy(sf.read(high.audio_path, dtype="float32")[0]),
                                warps["high"])
    torch.testing.assert_close(rec.source.raw(high), warped)
    rec.vtln = False
    rec.source.warps = {}
    list(rec.emissions(utts))
    assert rec.source.warps == {}


def test_vtlp_draws_a_warp_per_training_utterance() -> None:
    from asr.config import DataConfig
    from asr.data import draw_wave_aug

    dcfg = DataConfig(vtlp=[0.9, 1.1])
    warps = [draw_wave_aug(dcfg, 16000, torch.Generator().manual_seed(s)).warp for s in range(50)]
    # on a grid of 0.001 steps (201 values), so a few of 50 draws coincide
    assert all(0.9 <= w <= 1.1 for w in warps) and len(set(warps)) >= 40
    assert min(warps) < 0.95 and max(warps) > 1.05
    # a config without it draws exactly what it drew before (the warp is drawn last)
    plain = DataConfig(noise_snr=[5, 20], noise_prob=1.0)
    with_vtlp = DataConfig(noise_snr=[5, 20], noise_prob=1.0, vtlp=[0.9, 1.1])
    a = draw_wave_aug(plain, 16000, torch.Generator().manual_seed(7))
    b = draw_wave_aug(with_vtlp, 16000, torch.Generator().manual_seed(7))
    assert (a.snr_db, a.trim, a.pad, a.warp) == (b.snr_db, b.trim, b.pad, 1.0) and b.warp != 1.0
    with pytest.raises(ValueError, match="data.vtlp must be"):
        DataConfig(vtlp=[1.1, 0.9])
    with pytest.raises(UserError, match="needs features.kind=fbank"):
        load_config(None, ["features.kind=logmel", "data.vtlp=[0.9,1.1]"])
