"""Edit-distance alignment and error counts of reference/hypothesis pairs (the only counter).

Counting is delegated to jiwer (``process_words`` / ``process_characters``) so that every
number agrees with jiwer exactly; empty references are handled here because some jiwer
versions refuse them. Alignment ops use sclite's letters: C (correct), S, D, I.
"""

from __future__ import annotations

from dataclasses import dataclass

import jiwer
import numpy as np

# One aligned position: (tag, ref token or None, hyp token or None); tag in "CSDI".
Op = tuple[str, str | None, str | None]

_JIWER_TAG = {"equal": "C", "substitute": "S", "replace": "S", "delete": "D", "insert": "I"}


@dataclass(frozen=True)
class Counts:
    """Edit-operation counts; ``ref_len = hits + subs + dels``, ``hyp_len = hits + subs + ins``."""

    hits: int = 0
    subs: int = 0
    dels: int = 0
    ins: int = 0

    @property
    def errors(self) -> int:
        return self.subs + self.dels + self.ins

    @property
    def ref_len(self) -> int:
        return self.hits + self.subs + self.dels

    @property
    def hyp_len(self) -> int:
        return self.hits + self.subs + self.ins

    @property
    def rate(self) -> float:
        """(S+D+I)/N_ref; 0.0 when both are 0, ``inf`` for errors against an empty reference."""
        return error_rate(self.errors, self.ref_len)

    def to_dict(self) -> dict[str, float]:
        """``ref, sub, dele, ins, hits, rate`` (the ``wer``/``cer`` entries of ``wer.json``)."""
        return {"ref": self.ref_len, "sub": self.subs, "dele": self.dels, "ins": self.ins,
                "hits": self.hits, "rate": self.rate}

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.hits + other.hits, self.subs + other.subs,
                      self.dels + other.dels, self.ins + other.ins)


def error_rate(errors: float, n_ref: float) -> float:
    """errors / n_ref, defined as 0.0 for 0/0 and ``inf`` for e/0 with e > 0."""
    if n_ref > 0:
        return errors / n_ref
    return 0.0 if errors == 0 else float("inf")


def counts_of(ops: list[Op]) -> Counts:
    """Count the C/S/D/I ops of one alignment."""
    tags = [t for t, _, _ in ops]
    return Counts(tags.count("C"), tags.count("S"), tags.count("D"), tags.count("I"))


def _ops_from_chunks(ref: list[str], hyp: list[str], chunks) -> list[Op]:
    ops: list[Op] = []
    for c in chunks:
        tag = _JIWER_TAG[c.type]
        r, h = ref[c.ref_start_idx:c.ref_end_idx], hyp[c.hyp_start_idx:c.hyp_end_idx]
        if tag in "CS":
            assert len(r) == len(h), "jiwer equal/replace chunk with unequal spans"
            ops.extend((tag, a, b) for a, b in zip(r, h))
        elif tag == "D":
            ops.extend(("D", a, None) for a in r)
        else:
            ops.extend(("I", None, b) for b in h)
    return ops


def align_words(refs: list[str], hyps: list[str]) -> list[list[Op]]:
    """Word alignments of normalised pairs, from one ``jiwer.process_words`` call.

    Args:
        refs: Normalised reference strings (may be empty).
        hyps: Normalised hypothesis strings, same length as ``refs``.

    Returns:
        One op list per pair; an empty reference aligns as all insertions.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    out: list[list[Op]] = [[("I", None, w) for w in h.split()] for h in hyps]
    idx = [i for i, r in enumerate(refs) if r.split()]
    if idx:
        res = jiwer.process_words([refs[i] for i in idx], [hyps[i] for i in idx])
        for k, i in enumerate(idx):
            out[i] = _ops_from_chunks(res.references[k], res.hypotheses[k], res.alignments[k])
    return out


def char_counts(refs: list[str], hyps: list[str]) -> list[Counts]:
    """Character counts per pair from one ``jiwer.process_characters`` call (spaces count)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    out = [Counts(ins=len(h)) for h in hyps]
    idx = [i for i, r in enumerate(refs) if r]
    if idx:
        res = jiwer.process_characters([refs[i] for i in idx], [hyps[i] for i in idx])
        for k, i in enumerate(idx):
            ops = _ops_from_chunks(res.references[k], res.hypotheses[k], res.alignments[k])
            out[i] = counts_of(ops)
    return out


def ref_position_errors(ops: list[Op]) -> tuple[np.ndarray, np.ndarray]:
    """Errors located on the reference axis (for the matched-pairs test).

    Returns:
        ``word_err`` (N,) 1 where reference word k is substituted or deleted, and
        ``ins`` (N+1,) number of insertions in gap g, i.e. just before reference word g.
    """
    n = sum(1 for t, _, _ in ops if t != "I")
    word_err = np.zeros(n, dtype=np.int64)
    ins = np.zeros(n + 1, dtype=np.int64)
    k = 0
    for t, _, _ in ops:
        if t == "I":
            ins[k] += 1
        else:
            word_err[k] = t != "C"
            k += 1
    return word_err, ins


def format_alignment(ops: list[Op]) -> tuple[str, str, str]:
    """sclite ``pra``-style REF/HYP/Eval lines with aligned columns.

    Gaps are shown as ``***``; the Eval line marks S, D and I under each column.

    Example:
        >>> format_alignment([("C", "a", "a"), ("S", "cat", "hat"), ("I", None, "x")])
        ('a cat ***', 'a hat x', '  S   I')
    """
    ref_cols, hyp_cols, ev_cols = [], [], []
    for t, r, h in ops:
        rs, hs = r if r is not None else "***", h if h is not None else "***"
        w = max(len(rs), len(hs))
        ref_cols.append(rs.ljust(w))
        hyp_cols.append(hs.ljust(w))
        ev_cols.append(("" if t == "C" else t).ljust(w))
    ref_line, hyp_line, ev_line = (" ".join(c).rstrip() for c in (ref_cols, hyp_cols, ev_cols))
    return ref_line, hyp_line, ev_line
