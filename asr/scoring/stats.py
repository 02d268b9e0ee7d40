"""Confidence intervals and significance tests for word error rates.

* :func:`bootstrap_wer`: percentile bootstrap interval of the corpus WER, resampling
  utterances (or whole speakers, passing ``groups``).
* :func:`paired_bootstrap`: paired bootstrap of the WER difference between two systems on
  the same references (Koehn 2004; Bisani & Ney 2004, "probability of improvement").
* :func:`mapsswe`: NIST's matched-pairs sentence-segment word error test (Gillick & Cox
  1989, sclite ``sc_stats -t mapsswe``): utterances are cut into segments at runs of at least
  ``min_good`` words both systems got right; the mean per-segment error difference is tested
  with a normal approximation.

Arrays: K units (utterances or speakers), B bootstrap resamples.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

_CHUNK_CELLS = 2_000_000  # resample in blocks of at most this many (B x K) cells


def _rates(errors: np.ndarray, n_ref: np.ndarray) -> np.ndarray:
    """Vectorised (S+D+I)/N with 0/0 = 0 and e/0 = inf."""
    safe = np.where(n_ref > 0, n_ref, 1)
    return np.where(n_ref > 0, errors / safe, np.where(errors > 0, np.inf, 0.0))


def _group_sums(values: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Sum rows of ``values`` (K, M) per group label; identity when ``groups`` is None."""
    if groups is None:
        return values
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    out = np.zeros((inverse.max() + 1, values.shape[1]), dtype=values.dtype)
    np.add.at(out, inverse, values)
    return out


def _resample_sums(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Column sums of ``n_resamples`` with-replacement resamples of the rows of ``values``.

    Args:
        values: (K, M) per-unit quantities (e.g. errors, reference words).
    Returns:
        (B, M) sums, one row per resample.
    """
    k = values.shape[0]
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_CELLS // max(k, 1))
    out = []
    for start in range(0, n_resamples, step):
        idx = rng.integers(0, k, size=(min(step, n_resamples - start), k))  # (b, K)
        out.append(values[idx].sum(axis=1))  # (b, M)
    return np.concatenate(out, axis=0)


def _quantiles(x: np.ndarray, confidence: float) -> tuple[float, float]:
    a = (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore"):  # inf - inf inside the interpolation: an infinite end
        lo, hi = np.nan_to_num(np.quantile(x, [a, 1.0 - a]), nan=np.inf)
    return float(lo), float(hi)


def _check(n_resamples: int, confidence: float, k: int) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if k == 0:
        raise ValueError("cannot bootstrap an empty set of utterances")


class _Result:
    """A test result that reports itself as a plain dict (for JSON summaries)."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class BootstrapCI(_Result):
    """Percentile bootstrap interval of a corpus WER (fractions, not percent)."""

    low: float
    high: float
    confidence: float
    n_resamples: int
    unit: str
    seed: int


def bootstrap_wer(errors: np.ndarray, ref_lens: np.ndarray, *, n_resamples: int = 1000,
                  confidence: float = 0.95, seed: int = 0,
                  groups: np.ndarray | None = None) -> BootstrapCI:
    """Bootstrap interval of WER = sum(errors) / sum(ref_lens).

    Args:
        errors: (K,) S+D+I per utterance.
        ref_lens: (K,) reference words per utterance.
        n_resamples: Number of resamples B. Default 1000.
        confidence: Interval coverage. Default 0.95.
        seed: Seed of the NumPy generator; the same seed gives the same interval.
        groups: (K,) optional labels (e.g. speakers); whole groups are resampled.

    Example:
        >>> ci = bootstrap_wer(np.array([1, 0, 2]), np.array([10, 5, 8]), seed=1)
        >>> ci.low <= 3 / 23 <= ci.high
        True
    """
    vals = np.stack([np.asarray(errors), np.asarray(ref_lens)], axis=1).astype(np.int64)
    vals = _group_sums(vals, groups)  # (K, 2)
    _check(n_resamples, confidence, vals.shape[0])
    sums = _resample_sums(vals, n_resamples, seed)  # (B, 2)
    lo, hi = _quantiles(_rates(sums[:, 0], sums[:, 1]), confidence)
    unit = "utterance" if groups is None else "speaker"
    return BootstrapCI(lo, hi, confidence, n_resamples, unit, seed)


def verdict(p_value: float, a_minus_b: float, alpha: float = 0.05,
            name_a: str = "A", name_b: str = "B") -> str:
    """Plain-language result, e.g. ``"B is better than A at p<0.05"``.

    Args:
        a_minus_b: Error of A minus error of B (positive means B made fewer errors).
    """
    if p_value < alpha and a_minus_b != 0:
        better, worse = (name_b, name_a) if a_minus_b > 0 else (name_a, name_b)
        return f"{better} is better than {worse} at p<{alpha:g}"
    return f"no significant difference (p={p_value:.3g})"


@dataclass(frozen=True)
class PairedBootstrap(_Result):
    """Paired bootstrap of delta = WER_B - WER_A (negative: B is better).

    Attributes:
        p_value: Two-sided, ``2 * min(P(delta* <= 0), P(delta* >= 0))`` capped at 1.
        prob_b_better: Bisani & Ney's probability of improvement, P(delta* < 0).
    """

    delta: float
    low: float
    high: float
    p_value: float
    prob_b_better: float
    confidence: float
    n_resamples: int
    unit: str
    seed: int


def paired_bootstrap(errors_a: np.ndarray, errors_b: np.ndarray, ref_lens: np.ndarray, *,
                     n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                     groups: np.ndarray | None = None) -> PairedBootstrap:
    """Paired bootstrap test of two systems scored on the same utterances.

    Each resample draws the same units for both systems, so per-utterance difficulty
    cancels out.

    Args:
        errors_a: (K,) errors of system A per utterance.
        errors_b: (K,) errors of system B per utterance.
        ref_lens: (K,) reference words per utterance.
        groups: (K,) optional labels (speakers) to resample whole groups.
    """
    vals = np.stack([errors_a, errors_b, ref_lens], axis=1).astype(np.int64)
    vals = _group_sums(vals, groups)  # (K, 3)
    _check(n_resamples, confidence, vals.shape[0])
    sums = _resample_sums(vals, n_resamples, seed)  # (B, 3)
    d = np.nan_to_num(_rates(sums[:, 1], sums[:, 2]) - _rates(sums[:, 0], sums[:, 2]))
    tot = vals.sum(axis=0)
    delta = float(np.nan_to_num(_rates(tot[1:2], tot[2:3]) - _rates(tot[0:1], tot[2:3]))[0])
    p = min(1.0, 2.0 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
    lo, hi = _quantiles(d, confidence)
    unit = "utterance" if groups is None else "speaker"
    return PairedBootstrap(delta, lo, hi, p, float(np.mean(d < 0)), confidence,
                           n_resamples, unit, seed)


# Per utterance, errors on the reference axis: (word_err (N,), ins (N+1,)), see
# asr.scoring.align.ref_position_errors.
RefErrors = tuple[np.ndarray, np.ndarray]


def _separators(good: np.ndarray, ins_any: np.ndarray, min_good: int) -> np.ndarray:
    """(N,) True for words inside runs of >= min_good both-correct words with no insertion
    between them."""
    n = len(good)
    sep = np.zeros(n, dtype=bool)
    k = 0
    while k < n:
        if not good[k]:
            k += 1
            continue
        j = k
        while j + 1 < n and good[j + 1] and ins_any[j + 1] == 0:
            j += 1
        if j - k + 1 >= min_good:
            sep[k:j + 1] = True
        k = j + 1
    return sep


def mapsswe_segments(a: RefErrors, b: RefErrors, min_good: int = 2) -> list[tuple[int, int]]:
    """Cut one utterance into segments and count each system's errors in each.

    A segment ends at a run of at least ``min_good`` reference words that both systems got
    right (no insertion inside the run); insertions just before such a run belong to the
    segment on its left, as in sclite. Segments where neither system erred are dropped.

    Returns:
        [(errors_a, errors_b)] per segment.
    """
    (wa, ia), (wb, ib) = a, b
    if len(wa) != len(wb):
        raise ValueError("both systems must be aligned to the same reference")
    sep = _separators((wa == 0) & (wb == 0), ia + ib, min_good)
    segs: list[tuple[int, int]] = []
    ea = eb = 0
    for k in range(len(wa)):
        ea, eb = ea + int(ia[k]), eb + int(ib[k])  # insertions in the gap before word k
        if sep[k]:
            if ea or eb:
                segs.append((ea, eb))
            ea = eb = 0
        else:
            ea, eb = ea + int(wa[k]), eb + int(wb[k])
    ea, eb = ea + int(ia[-1]), eb + int(ib[-1])
    if ea or eb:
        segs.append((ea, eb))
    return segs


@dataclass(frozen=True)
class Mapsswe(_Result):
    """Matched-pairs sentence-segment word error test result.

    Attributes:
        mean_diff: Mean over segments of (errors of A - errors of B).
        z: mean_diff / (std / sqrt(n_segments)); p_value is two-sided (normal approximation).
    """

    n_segments: int
    errors_a: int
    errors_b: int
    mean_diff: float
    std_diff: float
    z: float
    p_value: float
    min_good: int


def mapsswe(utts_a: list[RefErrors], utts_b: list[RefErrors], min_good: int = 2) -> Mapsswe:
    """Run the MAPSSWE test over paired utterances (same order, same references).

    With fewer than two segments, or all differences zero, there is no evidence: z = 0, p = 1.
    """
    if len(utts_a) != len(utts_b):
        raise ValueError(f"{len(utts_a)} utterances for A but {len(utts_b)} for B")
    segs = [s for a, b in zip(utts_a, utts_b) for s in mapsswe_segments(a, b, min_good)]
    e = np.array(segs, dtype=np.int64).reshape(-1, 2)  # (n_segments, 2)
    d = (e[:, 0] - e[:, 1]).astype(float)
    m = len(d)
    mean = float(d.mean()) if m else 0.0
    std = float(d.std(ddof=1)) if m > 1 else 0.0
    if m < 2 or (std == 0.0 and mean == 0.0):
        z, p = 0.0, 1.0
    elif std == 0.0:
        z, p = math.copysign(math.inf, mean), 0.0
    else:
        z = mean / (std / math.sqrt(m))
        p = math.erfc(abs(z) / math.sqrt(2.0))
    return Mapsswe(m, int(e[:, 0].sum()), int(e[:, 1].sum()), mean, std, z, p, min_good)
