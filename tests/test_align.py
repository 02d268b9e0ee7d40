"""Forced alignment -> word times and confidences: a hand-made grid, tokenizer word conventions,
and a tiny model trained here on synthetic tone "words" whose true boundaries are known.

The tone model (``tone_recognizer``) is shared with test_transcribe.py and test_beam.py.
"""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
import torch

from asr.config import ExperimentConfig
from asr.decode.align import align_tokens, group_spans, spans_to_words, word_timings
from asr.decode.greedy import greedy_decode
from asr.decode.types import TokenSpan
from asr.features import FeatureConfig, FeatureExtractor
from asr.inference import Recognizer
from asr.model import ModelConfig
from asr.tokenizer import BPETokenizer, CharTokenizer, PhoneTokenizer

# --- the tone corpus: every letter is an 80 ms tone of its own pitch ------------------------------

SR = 8000
FREQ = {"A": 400.0, "B": 700.0, "C": 1000.0, "D": 1500.0, "E": 2200.0}
WORDS = ["AB", "CD", "EA", "BEC", "DAB", "CE"]
LETTER_S = 0.08


def _letter(ch: str) -> np.ndarray:
    n = int(LETTER_S * SR)
    ramp = np.minimum(1.0, np.minimum(np.arange(n), n - 1 - np.arange(n)) / (0.005 * SR))
    return 0.5 * ramp * np.sin(2 * np.pi * FREQ[ch] * np.arange(n) / SR)


def tone_sentence(rng: random.Random, n_words: int | None = None
                  ) -> tuple[np.ndarray, str, list[tuple[str, float, float]]]:
    """(float32 waveform at SR, text, [(word, start s, end s)]) of 1-4 random tone words with
    random pauses between them and around them."""
    words = [rng.choice(WORDS) for _ in range(n_words or rng.randint(1, 4))]
    parts = [np.zeros(int(rng.uniform(0.1, 0.3) * SR))]
    pos, bounds = len(parts[0]), []
    for i, w in enumerate(words):
        if i:
            gap = np.zeros(int(rng.uniform(0.15, 0.45) * SR))
            parts.append(gap)
            pos += len(gap)
        seg = np.concatenate([_letter(c) for c in w])
        parts.append(seg)
        bounds.append((w, pos / SR, (pos + len(seg)) / SR))
        pos += len(seg)
    parts.append(np.zeros(int(rng.uniform(0.1, 0.3) * SR)))
    x = np.concatenate(parts)
    noise = np.random.default_rng(rng.randrange(2**31)).standard_normal(len(x))
    return (x + 0.003 * noise).astype(np.float32), " ".join(words), bounds


@functools.lru_cache(maxsize=1)
def tone_recognizer(bidirectional: bool = True) -> Recognizer:
    """A 1-layer (Bi)LSTM CTC model trained for 300 steps (a few seconds) on the tone corpus."""
    torch.manual_seed(0)
    rng = random.Random(0)
    cfg = ExperimentConfig()
    cfg.features = FeatureConfig(kind="fbank", sample_rate=SR, n_mels=20)
    cfg.model = ModelConfig(hidden=48, layers=1, dropout=0.0, subsample=2,
                            bidirectional=bidirectional)
    tok = CharTokenizer.build(WORDS)
    fx = FeatureExtractor(cfg.features)
    data = [tone_sentence(rng) for _ in range(160)]
    feats = [fx(torch.from_numpy(x)) for x, _, _ in data]
    every = torch.cat(feats)
    cmvn = {"mean": every.mean(0), "std": every.std(0)}
    feats = [(f - cmvn["mean"]) / cmvn["std"] for f in feats]
    rec = Recognizer(cfg, tok, cmvn)
    model = rec.model.train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    for _ in range(300):
        idx = [rng.randrange(len(data)) for _ in range(16)]
        lens = torch.tensor([feats[i].shape[0] for i in idx])
        x = torch.nn.utils.rnn.pad_sequence([feats[i] for i in idx], batch_first=True)
        targets = [tok.encode(data[i][1]) for i in idx]
        log_probs, out_lens = model(x, lens)
        loss = ctc(log_probs.transpose(0, 1), torch.tensor([t for ts in targets for t in ts]),
                   out_lens, torch.tensor([len(ts) for ts in targets]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return rec


def log_probs_of(rec: Recognizer, wave: np.ndarray) -> torch.Tensor:
    """(T', V) log-probs of a waveform at the model's rate."""
    feats = rec.source.extract(torch.from_numpy(wave))
    feats = (feats - rec.cmvn["mean"]) / rec.cmvn["std"]
    with torch.no_grad():
        lp, lens = rec.model(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))
    return lp[0, :int(lens[0])]


# --- hand-made grids ----------------------------------------------------------------------------

SYMS = ["<blank>", "|", "A", "B"]


def grid(rows: list[dict[str, float]]) -> torch.Tensor:
    """(T, V) log-probs: given probabilities, the rest of each row spread evenly."""
    out = []
    for r in rows:
        rest = (1.0 - sum(r.values())) / (len(SYMS) - len(r))
        out.append([r.get(s, rest) for s in SYMS])
    return torch.tensor(out).log()


def test_align_tokens_spans_and_confidence_by_hand():
    # frames: A A - | B - ; the path is unique given the peaks
    lp = grid([{"A": 0.9}, {"A": 0.7}, {"<blank>": 0.8}, {"|": 0.6}, {"B": 0.5}, {"<blank>": 0.9}])
    spans = align_tokens(lp, [2, 1, 3])
    assert [(s.token, s.start, s.end) for s in spans] == [(2, 0, 2), (1, 3, 4), (3, 4, 5)]
    assert spans[0].confidence == pytest.approx(0.8)  # mean of 0.9 and 0.7
    assert spans[2].confidence == pytest.approx(0.5)
    words = spans_to_words(spans, CharTokenizer(SYMS), frame_seconds=0.04, offset=10.0)
    assert [w.word for w in words] == ["A", "B"]
    assert words[0].start == pytest.approx(10.0) and words[0].end == pytest.approx(10.08)
    assert words[1].start == pytest.approx(10.16) and words[1].end == pytest.approx(10.20)


def test_align_repeated_token_needs_a_blank_between():
    lp = grid([{"A": 0.9}, {"<blank>": 0.9}, {"A": 0.9}])
    assert [(s.start, s.end) for s in align_tokens(lp, [2, 2])] == [(0, 1), (2, 3)]
    with pytest.raises(ValueError, match="cannot align"):
        align_tokens(lp[:2], [2, 2])
    with pytest.raises(ValueError, match="2-D"):
        align_tokens(lp.unsqueeze(0), [2])
    assert align_tokens(lp, []) == []


def test_word_confidence_is_mean_posterior_over_the_words_frames():
    spans = [TokenSpan(2, 0, 3, 0.9), TokenSpan(3, 3, 4, 0.5)]  # word "AB": 3 frames + 1 frame
    (w,) = spans_to_words(spans, CharTokenizer(SYMS), 0.02)
    assert w.word == "AB" and w.confidence == pytest.approx((3 * 0.9 + 0.5) / 4)


def test_group_words_sentencepiece_and_phone_conventions():
    bpe = BPETokenizer.build(["HELLO WORLD HE"] * 20, vocab_size=12)
    syms = bpe.symbols
    ids = [syms.index(p) for w in ("HELLO", "WORLD", "HE") for p in bpe.spell(w)]
    assert len(ids) > 3  # some word is spelled in more than one piece
    spans = [TokenSpan(t, i, i + 1, 1.0) for i, t in enumerate(ids)]
    groups = group_spans(spans, bpe)
    assert [w for w, _ in groups] == ["HELLO", "WORLD", "HE"]
    assert sum(len(ss) for _, ss in groups) == len(spans)
    phones = PhoneTokenizer(["<blank>", "AH", "B"])
    spans = [TokenSpan(1, 0, 1, 1.0), TokenSpan(2, 2, 3, 1.0)]
    assert [w for w, _ in group_spans(spans, phones)] == ["AH", "B"]


# --- synthetic audio with known word boundaries --------------------------------------------------

def test_word_times_on_tone_audio_within_100ms():
    rec = tone_recognizer()
    rng = random.Random(123)
    errors, correct, n = [], 0, 20
    for _ in range(n):
        wave, text, truth = tone_sentence(rng)
        lp = log_probs_of(rec, wave)
        hyp = greedy_decode(lp.unsqueeze(0), torch.tensor([lp.shape[0]]), rec.tokenizer,
                            rec.frame_seconds)[0]
        if hyp.text != text:
            continue
        correct += 1
        words = word_timings(lp, hyp.tokens, rec.tokenizer, rec.frame_seconds)
        assert [w.word for w in words] == text.split()
        for w, (_, start, end) in zip(words, truth):
            errors += [abs(w.start - start), abs(w.end - end)]
            assert 0.0 <= w.confidence <= 1.0
            assert w.confidence > 0.5  # clean audio, learnt task
    assert correct >= 0.9 * n, f"tone model recognised only {correct}/{n} sentences"
    assert max(errors) < 0.100, f"word boundary errors up to {max(errors):.3f} s"
    assert float(np.mean(errors)) < 0.040


def test_confidence_drops_on_noise():
    rec = tone_recognizer()
    rng = random.Random(7)
    wave, text, _ = tone_sentence(rng, 2)
    lp = log_probs_of(rec, wave)
    tokens = rec.tokenizer.encode(text)
    clean = word_timings(lp, tokens, rec.tokenizer, rec.frame_seconds)
    noise = np.random.default_rng(0).standard_normal(len(wave))
    noisy_wave = (wave + 0.5 * noise).astype(np.float32)
    noisy = word_timings(log_probs_of(rec, noisy_wave), tokens, rec.tokenizer, rec.frame_seconds)
    assert min(w.confidence for w in clean) > max(w.confidence for w in noisy)
