"""Bootstrap intervals (coverage on synthetic data) and paired significance tests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asr.scoring import compare, score_texts
from asr.scoring.align import align_words, ref_position_errors
from asr.scoring.stats import (bootstrap_wer, mapsswe, mapsswe_segments, paired_bootstrap,
                               verdict)


def test_bootstrap_interval_covers_true_wer_at_nominal_rate():
    """200 corpora of 150 utterances, each word wrong with probability 0.1 (the true WER)."""
    p, reps, n = 0.1, 200, 150
    rng = np.random.default_rng(0)
    lens = rng.integers(5, 30, size=(reps, n))  # (R, K) reference words
    errs = rng.binomial(lens, p)  # (R, K) errors per utterance
    hits = 0
    for r in range(reps):
        ci = bootstrap_wer(errs[r], lens[r], n_resamples=1000, seed=r)
        hits += ci.low <= p <= ci.high
    assert 0.90 <= hits / reps <= 0.99


def test_speaker_bootstrap_covers_when_speakers_differ_and_utterance_bootstrap_does_not():
    """Speakers have their own error rates (Beta(2, 18), mean 0.1): utterances of a speaker
    are correlated, so only resampling whole speakers reaches the nominal coverage."""
    p, reps, n_spk, per = 0.1, 200, 40, 10
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(n_spk), per)  # (K,)
    hits = {"speaker": 0, "utterance": 0}
    for r in range(reps):
        rates = rng.beta(2, 18, n_spk)  # (S,)
        lens = rng.integers(5, 30, (n_spk, per))
        errs = rng.binomial(lens, rates[:, None])
        for unit, g in (("speaker", groups), ("utterance", None)):
            ci = bootstrap_wer(errs.ravel(), lens.ravel(), n_resamples=1000, seed=r, groups=g)
            assert ci.unit == unit
            hits[unit] += ci.low <= p <= ci.high
    assert 0.88 <= hits["speaker"] / reps <= 0.99
    assert hits["utterance"] / reps < 0.80


def test_bootstrap_is_reproducible_with_a_seed():
    e, n = np.array([1, 0, 3, 2, 0, 1]), np.array([10, 8, 12, 9, 7, 11])
    a = bootstrap_wer(e, n, n_resamples=500, seed=7)
    assert a == bootstrap_wer(e, n, n_resamples=500, seed=7)
    assert a.low <= e.sum() / n.sum() <= a.high
    with pytest.raises(ValueError):
        bootstrap_wer(np.array([]), np.array([]))


def _corpus(seed: int, n_utts: int = 150):
    """References and two systems: A substitutes 20% of words, B 5%, independently."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(50)]
    refs, hyp_a, hyp_b = {}, {}, {}
    for i in range(n_utts):
        words = list(rng.choice(vocab, rng.integers(5, 20)))
        refs[f"s{i % 10}-u{i}"] = " ".join(words)
        hyp_a[f"s{i % 10}-u{i}"] = " ".join("zz" if rng.random() < 0.2 else w for w in words)
        hyp_b[f"s{i % 10}-u{i}"] = " ".join("zz" if rng.random() < 0.05 else w for w in words)
    return refs, hyp_a, hyp_b


@pytest.mark.parametrize("unit", ["utterance", "speaker"])
def test_both_tests_find_a_real_difference_in_the_right_direction(unit):
    refs, hyp_a, hyp_b = _corpus(0)
    a = score_texts(refs, hyp_a, n_bootstrap=0, hyp_name="A.txt")
    b = score_texts(refs, hyp_b, n_bootstrap=0, hyp_name="B.txt")
    c = compare(a, b, n_bootstrap=1000, bootstrap_unit=unit, seed=0)
    assert c.bootstrap.delta == pytest.approx(b.wer - a.wer) and c.bootstrap.delta < 0
    assert c.bootstrap.p_value < 0.05 and c.bootstrap.prob_b_better > 0.95
    assert c.mapsswe.p_value < 0.05 and c.mapsswe.mean_diff > 0
    assert c.bootstrap_verdict == "B is better than A at p<0.05"
    assert c.mapsswe_verdict == "B is better than A at p<0.05"
    swapped = compare(b, a, n_bootstrap=1000, bootstrap_unit=unit)
    assert swapped.bootstrap_verdict == swapped.mapsswe_verdict == "A is better than B at p<0.05"


def test_a_system_against_itself_shows_no_difference():
    refs, hyp_a, _ = _corpus(1)
    a = score_texts(refs, hyp_a, n_bootstrap=0)
    c = compare(a, a, n_bootstrap=1000)
    assert c.bootstrap.p_value == 1.0 and c.mapsswe.p_value == 1.0
    assert c.bootstrap.delta == 0.0 and c.mapsswe.mean_diff == 0.0
    assert c.bootstrap_verdict.startswith("no significant difference")
    assert c.mapsswe_verdict.startswith("no significant difference")


def test_false_positive_rate_is_near_alpha_when_systems_are_equally_good():
    """Two systems with the same 10% per-word error rate: reject at most ~5% of the time."""
    rng = np.random.default_rng(3)
    reps, n = 400, 80
    rejects = {"bootstrap": 0, "mapsswe": 0}
    for r in range(reps):
        lens = rng.integers(5, 20, n)
        wa = [(rng.random(k) < 0.1).astype(np.int64) for k in lens]
        wb = [(rng.random(k) < 0.1).astype(np.int64) for k in lens]
        no_ins = [np.zeros(k + 1, dtype=np.int64) for k in lens]
        pb = paired_bootstrap(np.array([x.sum() for x in wa]), np.array([x.sum() for x in wb]),
                              lens, n_resamples=400, seed=r)
        mp = mapsswe(list(zip(wa, no_ins)), list(zip(wb, no_ins)))
        rejects["bootstrap"] += pb.p_value < 0.05
        rejects["mapsswe"] += mp.p_value < 0.05
    assert rejects["bootstrap"] / reps <= 0.10
    assert rejects["mapsswe"] / reps <= 0.10


def test_mapsswe_segments_follow_sclite_rules():
    """Cuts need >= 2 consecutive words both systems got right; an insertion just before such
    a run belongs to the segment on its left."""
    ref = "a b c d e f g h"
    (ops_a, ops_b) = align_words([ref, ref], ["a X c d INS e f h", "a b c d e f Y h"])
    assert [t for t, _, _ in ops_a] == list("CSCCICCDC")
    a, b = ref_position_errors(ops_a), ref_position_errors(ops_b)
    assert a[0].tolist() == [0, 1, 0, 0, 0, 0, 1, 0] and a[1].tolist()[4] == 1
    assert mapsswe_segments(a, b) == [(1, 0), (1, 0), (1, 1)]
    # with a buffer of 5 good words nothing separates: one segment per utterance
    assert mapsswe_segments(a, b, min_good=5) == [(3, 1)]
    res = mapsswe([a], [b])
    # differences 1, 1, 0: mean 2/3, sample std sqrt(1/3), Z = 2.0 exactly
    assert res.n_segments == 3 and res.mean_diff == pytest.approx(2 / 3)
    assert res.z == pytest.approx(2.0)
    assert res.p_value == pytest.approx(math.erfc(2.0 / math.sqrt(2)))


def test_mapsswe_empty_reference_utterance_is_one_segment():
    a = ref_position_errors([("I", None, "x"), ("I", None, "y")])
    b = ref_position_errors([])
    assert mapsswe_segments(a, b) == [(2, 0)]


def test_verdict_wording():
    assert verdict(0.01, 3.0) == "B is better than A at p<0.05"
    assert verdict(0.01, -3.0) == "A is better than B at p<0.05"
    assert verdict(0.2, 3.0) == "no significant difference (p=0.2)"
    assert verdict(1.0, 0.0) == "no significant difference (p=1)"
