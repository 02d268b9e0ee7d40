"""Greedy (best-path) CTC decoding: argmax per frame, collapse repeats, drop blanks.

Legend: B batch, T' output frames, V vocabulary (blank = 0).
"""

from __future__ import annotations

import torch

from asr.decode.types import Hypothesis, WordTiming


def ctc_best_path(log_probs: torch.Tensor, lens: torch.Tensor, blank: int = 0
                  ) -> list[tuple[list[int], list[int], float]]:
    """Collapse the frame-wise argmax of ``log_probs`` (B, T', V).

    Returns:
        per utterance: (tokens, the frame where each token starts, path log-probability).
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be 3-D (B, T, V), found {tuple(log_probs.shape)}")
    best, idx = log_probs.max(dim=-1)  # (B, T')
    out = []
    for b in range(log_probs.shape[0]):
        n = int(lens[b])
        seq = idx[b, :n].tolist()
        tokens, steps, prev = [], [], blank
        for t, s in enumerate(seq):
            if s != blank and s != prev:
                tokens.append(s)
                steps.append(t)
            prev = s
        out.append((tokens, steps, float(best[b, :n].sum())))
    return out


def char_word_timings(symbols: list[str], tokens: list[int], steps: list[int],
                      frame_seconds: float, probs: list[float], space: str = "|"
                      ) -> list[WordTiming]:
    """Split a character hypothesis at the word boundary symbol into timed words; a word's
    confidence is the mean posterior of its characters."""
    words: list[WordTiming] = []
    cur, t0, t1, ps = "", 0, 0, []
    for tok, t, p in zip(tokens, steps, probs):
        sym = symbols[tok]
        if sym == space:
            if cur:
                words.append(WordTiming(cur, t0 * frame_seconds, (t1 + 1) * frame_seconds,
                                        sum(ps) / len(ps)))
            cur, ps = "", []
            continue
        if not cur:
            t0 = t
        cur += sym
        t1 = t
        ps.append(p)
    if cur:
        words.append(WordTiming(cur, t0 * frame_seconds, (t1 + 1) * frame_seconds,
                                sum(ps) / len(ps)))
    return words


def greedy_decode(log_probs: torch.Tensor, lens: torch.Tensor, tokenizer,
                  frame_seconds: float) -> list[Hypothesis]:
    """Greedy-decode a batch into Hypotheses with text, tokens, word timings and score."""
    hyps = []
    for b, (tokens, steps, score) in enumerate(ctc_best_path(log_probs, lens)):
        text = tokenizer.decode(tokens)
        words: list[WordTiming] = []
        kind = getattr(tokenizer, "kind", "")
        if kind in ("char", "word"):
            probs = [float(log_probs[b, t, k].exp()) for k, t in zip(tokens, steps)]
        if kind == "char":
            words = char_word_timings(tokenizer.symbols, tokens, steps, frame_seconds, probs)
        elif kind == "word":  # each token is a word; its span is the frame of its spike
            words = [WordTiming(tokenizer.symbols[k], t * frame_seconds, (t + 1) * frame_seconds,
                                p) for k, t, p in zip(tokens, steps, probs)]
        hyps.append(Hypothesis(text, tokens, steps, words, score))
    return hyps
