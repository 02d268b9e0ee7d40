"""Greedy CTC decoding on hand-made log-prob grids (cf. icefall test_ctc_greedy_search.py)."""

from __future__ import annotations

import math

import pytest
import torch

from asr.decode.greedy import ctc_best_path, greedy_decode
from asr.decode.types import Hypothesis
from asr.tokenizer import BLANK, SPACE, CharTokenizer, PhoneTokenizer, WordTokenizer

SYMBOLS = [BLANK, SPACE, "A", "B"]
_, BAR, A, B = range(4)


def grid(best: list[int], probs: list[float], V: int = 4) -> torch.Tensor:
    """(T, V) log-probs whose frame t puts ``probs[t]`` on ``best[t]``, the rest spread evenly."""
    rows = []
    for k, p in zip(best, probs):
        row = torch.full((V,), (1 - p) / (V - 1), dtype=torch.float64)
        row[k] = p
        rows.append(row.log())
    return torch.stack(rows).float()


SEQ = [A, A, 0, A, B, B, 0, BAR, BAR, B, 0]
PROBS = [0.9, 0.8, 0.7, 0.6, 0.9, 0.5, 0.8, 0.7, 0.6, 0.95, 0.9]


def test_best_path_collapses_repeats_and_blanks_separate():
    lp = grid(SEQ, PROBS).unsqueeze(0)  # (1, T, V)
    [(tokens, steps, score)] = ctc_best_path(lp, torch.tensor([11]))
    assert tokens == [A, A, B, BAR, B]  # A A (blank between) B | B
    assert steps == [0, 3, 4, 7, 9]
    assert score == pytest.approx(sum(math.log(p) for p in PROBS), abs=1e-5)


@pytest.mark.parametrize("seq, expected", [
    ([A, A, A], [A]),
    ([A, 0, A], [A, A]),
    ([0, 0, 0], []),
    ([A, B, A, B], [A, B, A, B]),
    ([0, A, A, 0, 0, A, 0], [A, A]),
])
def test_best_path_small_cases(seq, expected):
    lp = grid(seq, [0.7] * len(seq)).unsqueeze(0)
    assert ctc_best_path(lp, torch.tensor([len(seq)]))[0][0] == expected


def test_best_path_respects_lengths_in_padded_batch():
    short_seq, short_p = [B, 0, B, A, A], [0.6, 0.7, 0.8, 0.9, 0.5]
    junk = [A, B, A, B, A, B]  # padding frames with confident non-blank argmaxes
    lp = torch.stack([grid(SEQ, PROBS), grid(short_seq + junk, short_p + [0.99] * 6)])
    out = ctc_best_path(lp, torch.tensor([11, 5]))
    assert out[0][:2] == ([A, A, B, BAR, B], [0, 3, 4, 7, 9])
    tokens, steps, score = out[1]
    assert (tokens, steps) == ([B, B, A], [0, 2, 3])
    assert score == pytest.approx(sum(math.log(p) for p in short_p), abs=1e-5)


def test_best_path_rejects_wrong_rank():
    with pytest.raises(ValueError, match="3-D"):
        ctc_best_path(torch.zeros(5, 4), torch.tensor([5]))


def test_greedy_decode_char_hypothesis_and_word_timings():
    tok = CharTokenizer(SYMBOLS)
    lp = grid(SEQ, PROBS).unsqueeze(0)
    [hyp] = greedy_decode(lp, torch.tensor([11]), tok, frame_seconds=0.04)
    assert isinstance(hyp, Hypothesis)
    assert hyp.text == "AAB B"
    assert hyp.tokens == [A, A, B, BAR, B] and hyp.timesteps == [0, 3, 4, 7, 9]
    # Word times come from forced alignment (for the best path: the argmax path itself).
    # "AAB": A over frames 0-1, A at 3, B over 4-5 -> [0, 6) frames; confidence = mean of the
    # posteriors over those five frames. "B": frame 9 -> [9, 10).
    assert len(hyp.words) == 2
    w1, w2 = hyp.words
    assert w1.word == "AAB" and w1.start == pytest.approx(0.0) and w1.end == pytest.approx(0.24)
    assert w1.confidence == pytest.approx((0.9 + 0.8 + 0.6 + 0.9 + 0.5) / 5, abs=1e-5)
    assert w2.word == "B" and w2.start == pytest.approx(0.36) and w2.end == pytest.approx(0.40)
    assert w2.confidence == pytest.approx(0.95, abs=1e-5)
    assert hyp.score == pytest.approx(sum(math.log(p) for p in PROBS), abs=1e-5)


def test_greedy_decode_batch_and_phone_tokenizer_times_each_phone():
    tok = PhoneTokenizer([BLANK, "ah", "b", "iy"])
    lp = torch.stack([grid([1, 1, 0, 2, 3], [0.9] * 5), grid([3, 0, 3, 2, 2], [0.9] * 5)])
    hyps = greedy_decode(lp, torch.tensor([5, 3]), tok, frame_seconds=0.02)
    assert [h.text for h in hyps] == ["ah b iy", "iy iy"]
    assert [[w.word for w in h.words] for h in hyps] == [["ah", "b", "iy"], ["iy", "iy"]]
    assert [t for w in hyps[0].words for t in (w.start, w.end)] == pytest.approx(
        [0.0, 0.04, 0.06, 0.08, 0.08, 0.10])
    assert hyps[1].timesteps == [0, 2]


def test_greedy_decode_word_tokenizer_times_each_word_by_alignment():
    tok = WordTokenizer([BLANK, "ONE", "TWO", "ZERO"])
    lp = grid([0, 2, 2, 0, 0, 3, 0], [0.9, 0.8, 0.6, 0.9, 0.9, 0.7, 0.9]).unsqueeze(0)
    (h,) = greedy_decode(lp, torch.tensor([7]), tok, frame_seconds=0.04)
    assert h.text == "TWO ZERO" and h.timesteps == [1, 5]
    assert [w.word for w in h.words] == ["TWO", "ZERO"]
    # TWO holds frames 1-2 of the path, ZERO frame 5
    assert h.words[0].start == pytest.approx(0.04) and h.words[0].end == pytest.approx(0.12)
    assert h.words[1].start == pytest.approx(0.20) and h.words[1].end == pytest.approx(0.24)
    assert h.words[0].confidence == pytest.approx((0.8 + 0.6) / 2, abs=1e-6)
    assert h.words[1].confidence == pytest.approx(0.7, abs=1e-6)
