"""Greedy (best-path) CTC decoding: argmax per frame, collapse repeats, drop blanks.

:class:`GreedyDecoder` has the call signature of :class:`~asr.decode.beam.BeamDecoder`:
``decoder(log_probs (B, T', V), lens (B,) | None, frame_seconds) -> n-best lists``.
Word times come from forced alignment of the chosen tokens (:mod:`asr.decode.align`), as in
beam search; for the best path that alignment is the argmax path itself.

Legend: B batch, T' output frames, V vocabulary (blank = 0).
"""

from __future__ import annotations

import torch

from asr.decode.align import check_log_probs, word_timings
from asr.decode.types import Hypothesis


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


class GreedyDecoder:
    """Best-path decoding into one-element n-best lists of :class:`Hypothesis`.

    Example:
        >>> nbest = GreedyDecoder(rec.tokenizer)(log_probs, lens, rec.frame_seconds)
        >>> nbest[0][0].text, nbest[0][0].words
    """

    nbest = 1

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, log_probs: torch.Tensor, lens: torch.Tensor | None = None,
                 frame_seconds: float = 0.0) -> list[list[Hypothesis]]:
        """Decode a batch.

        Args:
            log_probs: (B, T', V) log-posteriors.
            lens: (B,) valid frames; None means all T'.
            frame_seconds: duration of one output frame, for word times; 0 skips word timing.
        """
        check_log_probs(log_probs, self.tokenizer)
        lp = log_probs.detach().float().cpu()
        if lens is None:
            lens = torch.full((lp.shape[0],), lp.shape[1])
        out = []
        for b, (tokens, steps, score) in enumerate(ctc_best_path(lp, lens.cpu())):
            words = word_timings(lp[b, :int(lens[b])], tokens, self.tokenizer, frame_seconds) \
                if frame_seconds > 0 and tokens else []
            out.append([Hypothesis(self.tokenizer.decode(tokens), tokens, steps, words, score)])
        return out


def greedy_decode(log_probs: torch.Tensor, lens: torch.Tensor, tokenizer,
                  frame_seconds: float) -> list[Hypothesis]:
    """The best hypothesis of each utterance of a batch (``GreedyDecoder`` without n-best)."""
    return [nb[0] for nb in GreedyDecoder(tokenizer)(log_probs, lens, frame_seconds)]
