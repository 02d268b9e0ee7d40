"""Scoring: WER/CER/SER with alignments, per-speaker tables, confidence intervals, comparisons.

The Python API behind ``asr score``. Counting agrees with jiwer exactly; the corpus WER is
(S+D+I)/N_ref_words, with empty references allowed (they can only contribute insertions).

Example:
    >>> r = score_texts({"u1": "the cat sat"}, {"u1": "the hat sat down"}, n_bootstrap=0)
    >>> (r.words.subs, r.words.dels, r.words.ins, r.words.ref_len)
    (1, 0, 1, 3)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from asr.errors import UserError
from asr.text import SCORING_DEFAULT, TextNorm
from asr.scoring.align import (Counts, Op, align_words, char_counts, counts_of,
                               ref_position_errors)
from asr.scoring.io import ID_PREFIX_SOURCE, id_prefix_speaker
from asr.scoring.report import json_ready, write_reports
from asr.scoring.stats import (BootstrapCI, Mapsswe, PairedBootstrap, bootstrap_wer, mapsswe,
                               paired_bootstrap, verdict)

__all__ = [
    "Comparison", "Counts", "ScoreResult", "SpeakerScore", "TextNorm", "UttScore",
    "compare", "error_counts", "json_ready", "score_texts", "write_reports",
]

BOOTSTRAP_UNITS = ("utterance", "speaker")


@dataclass
class UttScore:
    """One utterance: normalised texts, alignment and counts."""

    id: str
    speaker: str
    ref: str
    hyp: str
    ops: list[Op]
    words: Counts
    chars: Counts
    missing_hyp: bool = False


@dataclass
class SpeakerScore:
    """Totals for one speaker; ``ci`` resamples that speaker's utterances."""

    speaker: str
    n_utts: int
    words: Counts
    n_sent_err: int
    ci: BootstrapCI | None = None

    @property
    def wer(self) -> float:
        return self.words.rate


@dataclass
class ScoreResult:
    """Everything ``asr score`` reports for one hypothesis set (rates are fractions)."""

    utts: list[UttScore]
    normalization: TextNorm
    speaker_source: str
    words: Counts
    chars: Counts
    speakers: list[SpeakerScore]
    ci: BootstrapCI | None = None
    ref_name: str = "ref"
    hyp_name: str = "hyp"

    @property
    def wer(self) -> float:
        return self.words.rate

    @property
    def cer(self) -> float:
        return self.chars.rate

    @property
    def n_sent_err(self) -> int:
        return sum(1 for u in self.utts if u.words.errors > 0)

    @property
    def ser(self) -> float:
        return self.n_sent_err / len(self.utts)

    @property
    def missing_hyp_ids(self) -> list[str]:
        return [u.id for u in self.utts if u.missing_hyp]

    def top_substitutions(self, k: int = 10) -> list[tuple[str, str, int]]:
        """Most frequent (ref word, hyp word, count), ties broken alphabetically."""
        c = Counter((r, h) for u in self.utts for t, r, h in u.ops if t == "S")
        return [(r, h, n) for (r, h), n in sorted(c.items(), key=lambda x: (-x[1], x[0]))[:k]]

    def top_deletions(self, k: int = 10) -> list[tuple[str, int]]:
        return _top(Counter(r for u in self.utts for t, r, _ in u.ops if t == "D"), k)

    def top_insertions(self, k: int = 10) -> list[tuple[str, int]]:
        return _top(Counter(h for u in self.utts for t, _, h in u.ops if t == "I"), k)


def _top(c: Counter, k: int) -> list[tuple[str, int]]:
    return sorted(c.items(), key=lambda x: (-x[1], x[0]))[:k]


def _match_ids(refs: Mapping[str, str], hyps: Mapping[str, str], ref_name: str,
               hyp_name: str) -> None:
    if not refs:
        raise UserError(f"{ref_name}: no utterances to score")
    extra = [u for u in hyps if u not in refs]
    if extra:
        raise UserError(f"{hyp_name}: {len(extra)} id(s) not in the reference {ref_name}, "
                        f"e.g. '{extra[0]}'")


def _speaker_scores(utts: list[UttScore], n_bootstrap: int, confidence: float,
                    seed: int) -> list[SpeakerScore]:
    by_spk: dict[str, list[UttScore]] = {}
    for u in utts:
        by_spk.setdefault(u.speaker, []).append(u)
    out = []
    for i, (spk, us) in enumerate(sorted(by_spk.items())):
        total = sum((u.words for u in us), Counts())
        ci = None
        if n_bootstrap > 0:
            ci = bootstrap_wer(np.array([u.words.errors for u in us]),
                               np.array([u.words.ref_len for u in us]),
                               n_resamples=n_bootstrap, confidence=confidence, seed=seed + 1 + i)
        out.append(SpeakerScore(spk, len(us), total, sum(u.words.errors > 0 for u in us), ci))
    return out


def error_counts(refs: list[str], hyps: list[str]) -> tuple[Counts, Counts]:
    """Corpus word and character counts of already normalised pairs: the counting of
    :func:`score_texts` without its report (training's dev WER, LM tuning).

    Example:
        >>> w, c = error_counts(["the cat"], ["the hat"])
        >>> w.rate, c.errors
        (0.5, 1)
    """
    words = sum((counts_of(o) for o in align_words(refs, hyps)), Counts())
    return words, sum(char_counts(refs, hyps), Counts())


def score_texts(refs: Mapping[str, str], hyps: Mapping[str, str], *,
                speakers: Mapping[str, str] | None = None, speaker_source: str | None = None,
                normalization: TextNorm = SCORING_DEFAULT, n_bootstrap: int = 1000,
                bootstrap_unit: str = "utterance", confidence: float = 0.95, seed: int = 0,
                ref_name: str = "ref", hyp_name: str = "hyp") -> ScoreResult:
    """Score hypotheses against references.

    Args:
        refs: id -> reference text; defines the utterances scored and their order.
        hyps: id -> hypothesis text. Ids missing here are scored as empty hypotheses
            (listed in ``missing_hyp_ids``); ids absent from ``refs`` raise UserError.
        speakers: id -> speaker. Default None: the id prefix before the first '-'.
        speaker_source: How ``speakers`` was obtained, stated in reports.
        normalization: Applied to both sides before counting. Default: keep case and
            punctuation, collapse whitespace.
        n_bootstrap: Bootstrap resamples for the CIs; 0 disables them. Default 1000.
        bootstrap_unit: "utterance" or "speaker" (resample whole speakers) for the corpus CI.
        confidence: CI coverage. Default 0.95.
        seed: Bootstrap seed.
        ref_name: Name of the reference (a path) used in messages and reports.
        hyp_name: Name of the hypothesis set.

    Returns:
        ScoreResult with word/char counts, alignments, per-speaker table and CI.
    """
    _match_ids(refs, hyps, ref_name, hyp_name)
    if bootstrap_unit not in BOOTSTRAP_UNITS:
        raise UserError(f"bootstrap unit must be one of {', '.join(BOOTSTRAP_UNITS)}, "
                        f"got '{bootstrap_unit}'")
    ids = list(refs)
    if speakers is None:
        spk = {u: id_prefix_speaker(u) for u in ids}
        speaker_source = ID_PREFIX_SOURCE
    else:
        missing = [u for u in ids if u not in speakers]
        if missing:
            raise UserError(f"no speaker for utterance '{missing[0]}'"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        spk = {u: speakers[u] for u in ids}
    r_norm = [normalization(refs[u]) for u in ids]
    h_norm = [normalization(hyps.get(u, "")) for u in ids]
    ops = align_words(r_norm, h_norm)
    chars = char_counts(r_norm, h_norm)
    utts = [UttScore(u, spk[u], r, h, o, counts_of(o), c, u not in hyps)
            for u, r, h, o, c in zip(ids, r_norm, h_norm, ops, chars)]
    ci = None
    if n_bootstrap > 0:
        ci = bootstrap_wer(np.array([u.words.errors for u in utts]),
                           np.array([u.words.ref_len for u in utts]),
                           n_resamples=n_bootstrap, confidence=confidence, seed=seed,
                           groups=np.array([u.speaker for u in utts])
                           if bootstrap_unit == "speaker" else None)
    return ScoreResult(
        utts=utts, normalization=normalization, speaker_source=speaker_source or "given",
        words=sum((u.words for u in utts), Counts()), chars=sum(chars, Counts()),
        speakers=_speaker_scores(utts, n_bootstrap, confidence, seed), ci=ci,
        ref_name=ref_name, hyp_name=hyp_name)


@dataclass
class Comparison:
    """Paired significance tests of system B against system A on the same references."""

    name_a: str
    name_b: str
    wer_a: float
    wer_b: float
    bootstrap: PairedBootstrap
    mapsswe: Mapsswe
    alpha: float = 0.05
    notes: list[str] = field(default_factory=list)

    @property
    def bootstrap_verdict(self) -> str:
        return verdict(self.bootstrap.p_value, -self.bootstrap.delta, self.alpha, "A", "B")

    @property
    def mapsswe_verdict(self) -> str:
        return verdict(self.mapsswe.p_value, self.mapsswe.mean_diff, self.alpha, "A", "B")


def compare(a: ScoreResult, b: ScoreResult, *, n_bootstrap: int = 1000,
            bootstrap_unit: str = "utterance", confidence: float = 0.95, seed: int = 0,
            alpha: float = 0.05) -> Comparison:
    """Paired bootstrap and MAPSSWE between two results scored on the same references.

    Args:
        a: System A (the baseline).
        b: System B.
        n_bootstrap: Resamples for the paired bootstrap (at least 1).
        bootstrap_unit: "utterance" or "speaker".
        alpha: Significance level of the verdicts. Default 0.05.

    Raises:
        UserError: the two results do not share utterance ids, references and normalisation.
    """
    if [u.id for u in a.utts] != [u.id for u in b.utts] or any(
            x.ref != y.ref for x, y in zip(a.utts, b.utts)):
        raise UserError(f"{a.hyp_name} and {b.hyp_name} were not scored on the same references")
    if a.normalization != b.normalization:
        raise UserError("both systems must be scored with the same normalisation")
    if bootstrap_unit not in BOOTSTRAP_UNITS:
        raise UserError(f"bootstrap unit must be one of {', '.join(BOOTSTRAP_UNITS)}")
    groups = np.array([u.speaker for u in a.utts]) if bootstrap_unit == "speaker" else None
    pb = paired_bootstrap(np.array([u.words.errors for u in a.utts]),
                          np.array([u.words.errors for u in b.utts]),
                          np.array([u.words.ref_len for u in a.utts]),
                          n_resamples=max(1, n_bootstrap), confidence=confidence, seed=seed,
                          groups=groups)
    mp = mapsswe([ref_position_errors(u.ops) for u in a.utts],
                 [ref_position_errors(u.ops) for u in b.utts])
    notes = []
    if a.missing_hyp_ids or b.missing_hyp_ids:
        notes.append(f"missing hypotheses scored as empty: A {len(a.missing_hyp_ids)}, "
                     f"B {len(b.missing_hyp_ids)}")
    return Comparison(a.hyp_name, b.hyp_name, a.wer, b.wer, pb, mp, alpha, notes)

