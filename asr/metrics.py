"""Corpus WER/CER with substitution/deletion/insertion counts (jiwer does the alignment)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import jiwer


@dataclass
class ErrorCounts:
    ref: int = 0
    sub: int = 0
    dele: int = 0
    ins: int = 0
    hits: int = 0

    @property
    def rate(self) -> float:
        errors = self.sub + self.dele + self.ins
        return errors / self.ref if self.ref else float(errors > 0)

    def as_dict(self) -> dict:
        return {**asdict(self), "rate": self.rate}


def _count(refs: list[str], hyps: list[str], chars: bool) -> ErrorCounts:
    c = ErrorCounts()
    pairs_r, pairs_h = [], []
    for r, h in zip(refs, hyps):
        if not r.strip():  # jiwer rejects empty references: every hyp unit is an insertion
            c.ins += len(" ".join(h.split())) if chars else len(h.split())
            continue
        pairs_r.append(r)
        pairs_h.append(h)
    if pairs_r:
        out = (jiwer.process_characters if chars else jiwer.process_words)(pairs_r, pairs_h)
        c.sub += out.substitutions
        c.dele += out.deletions
        c.ins += out.insertions
        c.hits += out.hits
        c.ref += out.hits + out.substitutions + out.deletions
    return c


def word_errors(refs: list[str], hyps: list[str]) -> ErrorCounts:
    return _count(refs, hyps, chars=False)


def char_errors(refs: list[str], hyps: list[str]) -> ErrorCounts:
    """Character errors; spaces count as characters, as in jiwer.cer."""
    return _count(refs, hyps, chars=True)
