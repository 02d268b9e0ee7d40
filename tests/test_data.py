"""asr.data: CTC feasibility, utterance filtering, length-bucketed batching, and the batch pipeline
on the synthetic tone corpus."""

from __future__ import annotations

import logging
import math

import pytest
import soundfile as sf
import torch

from asr.audio import add_noise, speed_perturb
from asr.config import DataConfig
from asr.data import (FeatureSource, ctc_min_frames, draw_wave_aug,
                      filter_utterances, make_batches, train_batches)
from asr.features import FeatureConfig, SpecAugmentConfig
from asr.manifest import Utterance, read_manifest
from asr.tokenizer import CharTokenizer


@pytest.mark.parametrize("targets, expected", [
    ([], 0), ([5], 1), ([1, 2, 3], 3), ([1, 1, 2], 4), ([1, 1, 1], 5), ([1, 2, 1], 3),
    ([3, 3, 4, 4], 6),
])
def test_ctc_min_frames(targets, expected):
    assert ctc_min_frames(targets) == expected


def _utt(uid: str, text: str, dur: float) -> Utterance:
    return Utterance(uid, f"/nowhere/{uid}.wav", dur, text, "spk")


def _alternating(n: int) -> str:
    return "".join("AB"[i % 2] for i in range(n))


def test_filter_utterances_reasons_and_counts(caplog):
    tok = CharTokenizer.build(["AB"])
    fcfg = FeatureConfig(kind="fbank")
    dcfg = DataConfig(max_duration=5.0, min_duration=0.1, speed_perturb=[1.0])
    # 0.2 s -> 1 + (3200 - 400) // 160 = 18 frames -> ceil(18 / 4) = 5 frames after subsampling
    utts = [
        _utt("ok", "AB", 1.0),
        _utt("oov", "AXB", 1.0),
        _utt("empty", "", 1.0),
        _utt("long", "AB", 6.0),
        _utt("short", "AB", 0.05),
        _utt("just_fits", "ABABA", 0.2),  # needs 5 frames, has 5
        _utt("repeat", "AABAB", 0.2),  # the repeat needs a blank: 6 frames > 5
        _utt("too_many", _alternating(6), 0.2),
    ]
    caplog.set_level(logging.INFO, logger="asr.data")
    kept = filter_utterances(utts, tok.encode, fcfg, dcfg, subsample=4, what="train")
    assert [e.utt.id for e in kept] == ["ok", "just_fits"]
    assert kept[0].targets == [2, 3] and kept[0].frames == fcfg.num_frames(16000) == 98
    assert kept[1].frames == 18
    log = caplog.text
    assert "kept 2 of 8" in log
    for reason, n in [("untokenisable", 1), ("empty", 1), ("too_long", 1), ("too_short", 1),
                      ("ctc_infeasible", 2)]:
        assert f"'{reason}': {n}" in log, log


def test_filter_uses_fastest_speed_for_training_only(caplog):
    tok = CharTokenizer.build(["AB"])
    fcfg = FeatureConfig(kind="fbank")
    dcfg = DataConfig(speed_perturb=[0.9, 1.0, 1.1])
    # 0.5 s: 48 frames at speed 1.0, 1 + (7272 - 400) // 160 = 43 at speed 1.1
    utts = [_utt("u", _alternating(45), 0.5)]
    assert filter_utterances(utts, tok.encode, fcfg, dcfg, 1, "train") == []
    assert len(filter_utterances(utts, tok.encode, fcfg, dcfg, 1, "dev")) == 1


@pytest.mark.parametrize("seconds", [1.0, 2.0, 2.5, 2.983, 2.997])
def test_kept_utterances_are_feasible_at_the_speed_actually_applied(seconds):
    """filter_utterances promises CTC can align every kept utterance at the fastest speed
    perturbation. speed_perturb(1.1) really resamples to 14500 Hz (factor 1.1034), so the filter
    must count frames with that length, not with int(n / 1.1). Around the boundary (the
    int(n / 1.1) estimate, one more and one fewer target) an utterance is kept exactly when it
    is feasible: an infeasible one kept, or a feasible one dropped, fails."""
    tok = CharTokenizer.build(["AB"])
    fcfg, sub = FeatureConfig(kind="fbank"), 4
    dcfg = DataConfig(speed_perturb=[1.1], max_duration=10.0)
    n = int(seconds * 16000)
    wave_len = len(speed_perturb(torch.zeros(n), 16000, 1.1))
    avail = math.ceil(fcfg.num_frames(wave_len) / sub)
    predicted = math.ceil(fcfg.num_frames(int(seconds * 16000 / 1.1)) / sub)
    outcomes = []
    for length in (predicted - 1, predicted, predicted + 1):
        utt = _utt("u", _alternating(length), seconds)
        kept = filter_utterances([utt], tok.encode, fcfg, dcfg, sub, "train")
        need = ctc_min_frames(tok.encode(utt.text))
        assert bool(kept) == (avail >= need), (
            f"{seconds} s, {length} targets: kept={bool(kept)}, but speed 1.1 leaves {wave_len} "
            f"samples -> {avail} frames, {need} needed")
        outcomes.append(bool(kept))
    assert outcomes[0] and not outcomes[-1]  # the boundary lies inside the lengths tried


def _check_batches(batches, frames, max_frames, max_batch):
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(frames)))  # every index exactly once
    for b in batches:
        assert 1 <= len(b) <= max_batch
        padded = len(b) * max(frames[i] for i in b)
        assert padded <= max_frames or len(b) == 1, (b, padded)


def _frames(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    fr = torch.randint(50, 500, (n,), generator=g).tolist()
    fr[7] = 5000  # longer than the whole budget: must travel alone
    fr[8] = 2000  # exactly the budget
    return fr


def test_make_batches_covers_all_within_budget():
    fr = _frames()
    for gen in (torch.Generator().manual_seed(1), None):
        batches = make_batches(fr, max_frames=2000, max_batch=8, num_buckets=4, gen=gen)
        _check_batches(batches, fr, 2000, 8)
        assert [7] in batches and [8] in batches
        assert len(batches) < len(fr) // 2  # batches are actually filled


def test_make_batches_without_generator_is_length_sorted():
    fr = _frames()
    batches = make_batches(fr, 2000, 8, 4, None)
    flat = [i for b in batches for i in b]
    assert [fr[i] for i in flat] == sorted(fr)


def test_make_batches_deterministic_per_seed():
    fr = _frames()
    a = make_batches(fr, 2000, 8, 4, torch.Generator().manual_seed(3))
    b = make_batches(fr, 2000, 8, 4, torch.Generator().manual_seed(3))
    c = make_batches(fr, 2000, 8, 4, torch.Generator().manual_seed(4))
    assert a == b
    assert a != c
    _check_batches(c, fr, 2000, 8)


def test_make_batches_buckets_keep_similar_lengths():
    fr = list(range(100, 1100, 10))  # 100 utterances, 100..1090 frames
    batches = make_batches(fr, 100000, 10, 5, torch.Generator().manual_seed(0))
    for b in batches:  # each batch comes from one bucket of 20 neighbouring lengths
        assert max(fr[i] for i in b) - min(fr[i] for i in b) < 200


def test_make_batches_max_batch():
    fr = [10] * 25
    batches = make_batches(fr, 10**6, 4, 1, None)
    assert [len(b) for b in batches] == [4, 4, 4, 4, 4, 4, 1]


# -- the pipeline on real (synthetic) audio --------------------------------------------------

def test_tone_corpus_manifest(tone_corpus):
    utts = read_manifest(tone_corpus)
    assert len(utts) == 16 and len({u.id for u in utts}) == 16
    for u in utts:
        assert u.text and set(u.text) <= set("ABC ")
        assert u.duration == pytest.approx(sf.info(u.audio_path).duration)
    assert len({u.speaker for u in utts}) == 3


def _setup(tone_corpus, cache=True):
    utts = read_manifest(tone_corpus)
    tok = CharTokenizer.build([u.text for u in utts])
    fcfg = FeatureConfig(kind="logmel", n_mels=20)
    dcfg = DataConfig(max_frames=600, max_batch=4, speed_perturb=[0.9, 1.0, 1.1],
                      cache_features=cache)
    examples = filter_utterances(utts, tok.encode, fcfg, dcfg, 2, "train")
    return utts, tok, fcfg, dcfg, examples


def test_train_batches_on_tone_corpus(tone_corpus):
    utts, tok, fcfg, dcfg, examples = _setup(tone_corpus)
    assert len(examples) == 16  # every tone utterance is usable
    source = FeatureSource(fcfg, None, cache=True)
    for ex in examples:
        assert source.raw(ex.utt).shape == (ex.frames, 20)  # frames predicted from duration
    spec = SpecAugmentConfig(freq_masks=1, freq_width=4, time_masks=1, time_width=5)
    run1 = list(train_batches(examples, source, dcfg, spec, seed=5, epoch=1))
    by_id = {ex.utt.id: ex for ex in examples}
    seen = []
    for bi, batch in run1:
        B = len(batch.ids)
        assert batch.feats.shape[0] == B and batch.feats.shape[2] == 20
        assert batch.feats.shape[1] == int(batch.lens.max())
        assert B * batch.feats.shape[1] <= dcfg.max_frames or B == 1
        for b in range(B):  # padding is zeros
            assert (batch.feats[b, int(batch.lens[b]):] == 0).all()
        expected = [t for uid in batch.ids for t in by_id[uid].targets]
        assert batch.targets.tolist() == expected
        assert batch.target_lens.tolist() == [len(by_id[u].targets) for u in batch.ids]
        assert batch.seconds == pytest.approx(sum(by_id[u].utt.duration for u in batch.ids))
        seen += batch.ids
    assert [bi for bi, _ in run1] == list(range(len(run1)))
    assert sorted(seen) == sorted(by_id)
    run2 = list(train_batches(examples, source, dcfg, spec, seed=5, epoch=1))
    assert [b.ids for _, b in run1] == [b.ids for _, b in run2]
    assert all(torch.equal(a.feats, b.feats) for (_, a), (_, b) in zip(run1, run2))
    run3 = list(train_batches(examples, source, dcfg, spec, seed=5, epoch=2))
    assert [b.ids for _, b in run1] != [b.ids for _, b in run3]


def test_emissions_batch_utterances_by_length_with_the_models_cmvn(tone_corpus, monkeypatch):
    from asr.config import ExperimentConfig
    from asr.inference import Recognizer
    from asr.model import ModelConfig

    utts, tok, fcfg, dcfg, examples = _setup(tone_corpus)
    stats = {"mean": torch.full((20,), -3.0), "std": torch.full((20,), 2.0)}
    cfg = ExperimentConfig(features=fcfg, model=ModelConfig(hidden=8, layers=1, dropout=0.0))
    rec = Recognizer(cfg, tok, stats)
    seen, forward = [], Recognizer.forward
    monkeypatch.setattr(Recognizer, "forward",
                        lambda self, feats: seen.append(feats) or forward(self, feats))
    out = list(rec.emissions(utts, max_frames=500, max_batch=3))
    ids = [i for b, _, _ in out for i in b]
    assert sorted(ids) == sorted(u.id for u in utts)  # each utterance once
    durs = {u.id: u.duration for u in utts}
    assert [durs[i] for i in ids] == sorted(durs[i] for i in ids)  # length order
    assert all(len(f) <= 3 and len(f) * max(x.shape[0] for x in f) <= 500 for f in seen)
    u0 = next(u for u in utts if u.id == out[0][0][0])
    torch.testing.assert_close(seen[0][0], (FeatureSource(fcfg, None, False).raw(u0) + 3.0) / 2.0)
    for (b_ids, log_probs, lens), feats in zip(out, seen):  # (B, T', V) and valid lengths
        assert log_probs.shape[0] == len(b_ids) and log_probs.shape[2] == len(tok.symbols)
        assert lens.tolist() == [math.ceil(f.shape[0] / cfg.model.subsample) for f in feats]


def test_add_noise_hits_the_requested_snr():
    g = torch.Generator().manual_seed(0)
    wave = torch.sin(torch.arange(16000) * 0.05) * 0.3
    for snr in (0.0, 10.0, 30.0):
        noisy = add_noise(wave, snr, g)
        measured = 10 * math.log10(wave.pow(2).mean() / (noisy - wave).pow(2).mean())
        assert measured == pytest.approx(snr, abs=0.2)
    silence = torch.zeros(800)
    assert add_noise(silence, 10.0, g) is silence


def test_train_batches_noise_is_drawn_per_epoch_and_reproducible(tone_corpus):
    utts, tok, fcfg, _, examples = _setup(tone_corpus)
    dcfg = DataConfig(max_frames=600, max_batch=4, speed_perturb=[1.0], noise_snr=[5.0, 15.0],
                      noise_prob=1.0)
    clean = FeatureSource(fcfg, None, cache=True)
    noisy = FeatureSource(fcfg, None, cache=True)

    def feats(source, d, epoch):
        return {i: b.feats[k, :int(b.lens[k])] for _, b in train_batches(examples, source, d,
                None, seed=3, epoch=epoch) for k, i in enumerate(b.ids)}

    ref = feats(clean, DataConfig(max_frames=600, max_batch=4, speed_perturb=[1.0]), 1)
    e1, e1_again, e2 = feats(noisy, dcfg, 1), feats(noisy, dcfg, 1), feats(noisy, dcfg, 2)
    for uid in ref:
        assert ref[uid].shape == e1[uid].shape
        assert not torch.allclose(ref[uid], e1[uid], atol=1e-2)  # noise changed the features
        torch.testing.assert_close(e1[uid], e1_again[uid])       # same seed, same noise
        assert not torch.equal(e1[uid], e2[uid])                 # fresh noise next epoch
    # noise_prob 0 is the clean pipeline
    off = DataConfig(max_frames=600, max_batch=4, speed_perturb=[1.0], noise_snr=[5.0, 15.0],
                     noise_prob=0.0)
    zero = feats(FeatureSource(fcfg, None, cache=True), off, 1)
    assert all(torch.equal(ref[u], zero[u]) for u in ref)


@pytest.mark.parametrize("kw", [dict(noise_snr=[10.0]), dict(noise_snr=[20.0, 10.0]),
                                dict(noise_prob=1.5)])
def test_noise_config_checked(kw):
    with pytest.raises(ValueError, match="data.noise"):
        DataConfig(**kw)


def test_wave_aug_trims_and_pads_within_bounds(tone_corpus):
    utts, tok, fcfg, _, examples = _setup(tone_corpus)
    dcfg = DataConfig(max_frames=600, max_batch=4, speed_perturb=[1.0], trim_ms=50.0,
                      pad_ms=100.0)
    g = torch.Generator().manual_seed(1)
    sr = fcfg.sample_rate
    wave = torch.randn(sr)
    lengths = set()
    for _ in range(50):
        aug = draw_wave_aug(dcfg, sr, g)
        assert aug.snr_db is None and aug.active
        assert all(0 <= t <= 0.05 * sr for t in aug.trim)
        assert all(0 <= p <= 0.1 * sr for p in aug.pad)
        out = aug(wave)
        assert out.shape[0] == sr - sum(aug.trim) + sum(aug.pad)
        a, b = aug.trim
        torch.testing.assert_close(out[aug.pad[0]:out.shape[0] - aug.pad[1]],
                                   wave[a:sr - b])                     # the kept middle
        assert (out[:aug.pad[0]] == 0).all() and (out[out.shape[0] - aug.pad[1]:] == 0).all()
        lengths.add(out.shape[0])
    assert len(lengths) > 40  # drawn afresh each time
    assert draw_wave_aug(DataConfig(), sr, g) is None  # nothing asked, nothing drawn

    source = FeatureSource(fcfg, None, cache=True)
    batches = list(train_batches(examples, source, dcfg, None, seed=2, epoch=1))
    by_id = {ex.utt.id: ex for ex in examples}
    hop = fcfg.hop_length
    for _, b in batches:
        for k, uid in enumerate(b.ids):
            n = int(b.lens[k])
            base = by_id[uid].frames
            assert base - 0.1 * sr / hop - 2 <= n <= base + 0.2 * sr / hop + 2
