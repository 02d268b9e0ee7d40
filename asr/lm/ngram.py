"""Word n-gram LM: interpolated modified Kneser-Ney estimation written as ARPA, the way KenLM's
``lmplz`` does it, plus a tiny pure-Python ARPA reader for tests and sanity checks.

Estimation (Chen & Goodman 1998; Heafield et al. 2013), for an order-N model:

1. Every sentence is wrapped as ``<s> w1 .. wn </s>``; all n-grams of order 1..N inside it are
   counted (n-grams never end in ``<s>``).
2. Adjusted counts ``a``: the raw count for order N and for n-grams that begin with ``<s>`` (nothing
   can precede ``<s>``); otherwise the continuation count N1+(. w), the number of distinct words
   seen to the left.
3. Discounts per order from the count-of-counts ``t_k`` of adjusted counts (k = 1..4):
   ``Y = t1 / (t1 + 2 t2)``, ``D_k = k - (k + 1) Y t_{k+1} / t_k`` for k = 1, 2, 3 (D3 is used for
   all counts >= 3). Fallback (lmplz's ``--discount_fallback`` default): where some ``t_k``
   (k = 1..3) is zero, or a discount falls outside ``[0, k]``, that order uses
   ``D1, D2, D3+ = 0.5, 1.0, 1.5`` and its :class:`Discount` is marked ``fallback=True``
   (lmplz stops with an error there unless told to fall back).
4. For each context ``c``: ``u(w|c) = (a(c w) - D(a(c w))) / sum_x a(c x)`` and
   ``gamma(c) = (D1 N1(c .) + D2 N2(c .) + D3 N3+(c .)) / sum_x a(c x)``.
5. Interpolation: ``p(w) = u(w) + gamma() / |V|`` with ``|V|`` the vocabulary with ``</s>`` and
   ``<unk>`` but without ``<s>``; ``p(w|c) = u(w|c) + gamma(c) p(w|c')`` with ``c'`` = ``c``
   minus its first word. ``<unk>`` gets ``gamma() / |V|``; ``<s>`` has no probability of its own
   (``-99`` in the ARPA file).
6. The ARPA backoff weight of a context is ``gamma(c)``, so backing off reproduces the
   interpolated model exactly; n-grams that are no context (ending in ``</s>``) get backoff 0.

Counting is in memory (Python dicts): fine for transcripts and LM corpora of a few million words.
Input lines are split on whitespace; the tokens ``<s>``, ``</s>`` and ``<unk>`` in the text are
dropped (lmplz's ``--skip_symbols``) and blank lines are skipped.
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from asr.errors import UserError
from asr.fileio import atomic_write_text

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
SPECIAL = frozenset((BOS, EOS, UNK))
MAX_ORDER = 6
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
LOG10_ZERO = -99.0  # ARPA's stand-in for log10(0)

Ngram = tuple[str, ...]


@dataclass(frozen=True)
class Discount:
    """Modified Kneser-Ney discounts of one order.

    Attributes:
        d1, d2, d3: discounts for adjusted counts 1, 2 and 3 or more.
        fallback: True when the count-of-counts were degenerate and the fallback was used.
    """

    d1: float
    d2: float
    d3: float
    fallback: bool = False

    def __call__(self, count: int) -> float:
        """Discount for an adjusted count (0 for a count of 0)."""
        return (0.0, self.d1, self.d2, self.d3)[min(count, 3)]


def sentences_from_lines(lines: Iterable[str]) -> Iterator[list[str]]:
    """Split text lines into word lists; skips blank lines and the special tokens."""
    for line in lines:
        words = [w for w in line.split() if w not in SPECIAL]
        if words:
            yield words


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> list[Counter[Ngram]]:
    """Raw counts of all n-grams of order 1..``order`` in ``<s> sentence </s>``.

    Special tokens inside a sentence are dropped and empty sentences skipped, as in
    :func:`sentences_from_lines`.

    Returns:
        list of ``order`` Counters; index ``k - 1`` holds the k-grams.
    """
    counts: list[Counter[Ngram]] = [Counter() for _ in range(order)]
    for sentence in sentences:
        words = [w for w in sentence if w not in SPECIAL]
        if not words:
            continue
        padded = (BOS, *words, EOS)
        for end in range(2, len(padded) + 1):  # n-grams ending at padded[end - 1], never <s>
            for n in range(1, min(order, end) + 1):
                counts[n - 1][padded[end - n:end]] += 1
    return counts


def adjust_counts(raw: list[Counter[Ngram]]) -> list[dict[Ngram, int]]:
    """Kneser-Ney adjusted counts: raw for the top order and ``<s>``-initial n-grams, else the
    number of distinct left extensions seen one order up."""
    adjusted: list[dict[Ngram, int]] = [dict(c) for c in raw]
    for k in range(len(raw) - 1):  # (k+1)-grams from the (k+2)-grams
        cont: Counter[Ngram] = Counter(g[1:] for g in raw[k + 1])
        lower = adjusted[k]
        for g in lower:
            if g[0] != BOS:
                lower[g] = cont[g]
        assert all(v > 0 for v in lower.values()), "every n-gram has a left context or starts <s>"
    return adjusted


def estimate_discounts(
    adjusted: list[dict[Ngram, int]], fallback: tuple[float, float, float] = FALLBACK_DISCOUNTS
) -> list[Discount]:
    """Discounts per order from count-of-counts (Chen & Goodman eq. 26), with lmplz's fallback."""
    discounts = []
    for counts in adjusted:
        t = Counter(min(a, 5) for a in counts.values())
        found = None
        if all(t[k] > 0 for k in (1, 2, 3)):
            y = t[1] / (t[1] + 2 * t[2])
            d = [k - (k + 1) * y * t[k + 1] / t[k] for k in (1, 2, 3)]
            if all(0.0 <= d[k - 1] <= k for k in (1, 2, 3)):
                found = Discount(*d)
        discounts.append(found or Discount(*fallback, fallback=True))
    return discounts


@dataclass
class KneserNeyModel:
    """An estimated interpolated modified Kneser-Ney model.

    Attributes:
        order: N.
        discounts: per order, index ``k - 1``.
        adjusted: adjusted counts per order.
        uninterp: per order, ``u(w|c)`` keyed by the n-gram ``c + (w,)``.
        gamma: interpolation weight per context; ``()`` holds the unigram weight.
        probs: per order, the interpolated ``p(w|c)`` of every n-gram present (linear).
        vocab_size: ``|V|`` for the uniform distribution (words, ``</s>``, ``<unk>``).
    """

    order: int
    discounts: list[Discount]
    adjusted: list[dict[Ngram, int]]
    uninterp: list[dict[Ngram, float]]
    gamma: dict[Ngram, float]
    probs: list[dict[Ngram, float]]
    vocab_size: int

    def prob(self, word: str, context: Sequence[str] = ()) -> float:
        """Interpolated ``p(word | context)`` computed directly from ``u`` and ``gamma``.

        Unknown words count as ``<unk>``; only the last ``order - 1`` context words matter, and a
        context never seen passes all its mass to the shorter one.
        """
        if word == BOS:
            return 0.0
        if (word,) not in self.probs[0]:
            word = UNK
        ctx = _last(tuple(w if (w,) in self.probs[0] else UNK for w in context), self.order - 1)
        p = 1.0 / self.vocab_size
        for start in range(len(ctx), -1, -1):  # shortest context first
            c = ctx[start:]
            if c in self.gamma:
                p = self.uninterp[len(c)].get(c + (word,), 0.0) + self.gamma[c] * p
        return p

    def to_arpa(self) -> str:
        """The model as ARPA text (log10 probabilities and backoffs)."""
        lines = ["\\data\\"]
        lines += [f"ngram {k + 1}={len(p)}" for k, p in enumerate(self.probs)]
        for k, probs in enumerate(self.probs):
            lines += ["", f"\\{k + 1}-grams:"]
            for g in _arpa_order(probs, k):
                text = f"{_log10(probs[g]) if g != (BOS,) else LOG10_ZERO:.8g}\t{' '.join(g)}"
                if k + 1 < self.order:
                    text += f"\t{_log10(self.gamma.get(g, 1.0)):.8g}"
                lines.append(text)
        lines += ["", "\\end\\", ""]
        return "\n".join(lines)

    def write_arpa(self, path: str | os.PathLike) -> None:
        """Write the ARPA file atomically."""
        atomic_write_text(path, self.to_arpa())


def _last(words: Ngram, n: int) -> Ngram:
    return words[max(0, len(words) - n):]


def _log10(x: float) -> float:
    return math.log10(x) if x > 0.0 else LOG10_ZERO


def _arpa_order(probs: dict[Ngram, float], k: int) -> list[Ngram]:
    if k == 0:  # lmplz's vocabulary order: specials first
        head = [(UNK,), (BOS,), (EOS,)]
        return head + sorted(g for g in probs if g[0] not in SPECIAL)
    return sorted(probs)


def estimate(
    adjusted: list[dict[Ngram, int]], discounts: list[Discount]
) -> tuple[list[dict[Ngram, float]], dict[Ngram, float]]:
    """``u(w|c)`` per order and ``gamma(c)`` per context from adjusted counts and discounts."""
    uninterp: list[dict[Ngram, float]] = []
    gamma: dict[Ngram, float] = {}
    for counts, discount in zip(adjusted, discounts):
        denom: dict[Ngram, int] = defaultdict(int)
        mass: dict[Ngram, float] = defaultdict(float)
        for g, a in counts.items():
            denom[g[:-1]] += a
            mass[g[:-1]] += discount(a)
        uninterp.append({g: (a - discount(a)) / denom[g[:-1]] for g, a in counts.items()})
        gamma.update((c, mass[c] / denom[c]) for c in denom)
    return uninterp, gamma


def interpolate(
    uninterp: list[dict[Ngram, float]], gamma: dict[Ngram, float], vocab_size: int
) -> list[dict[Ngram, float]]:
    """Interpolated probabilities of every n-gram present, lowest order first."""
    uniform = 1.0 / vocab_size
    probs: list[dict[Ngram, float]] = [{g: u + gamma[()] * uniform for g, u in uninterp[0].items()}]
    probs[0][(UNK,)] = gamma[()] * uniform
    probs[0][(BOS,)] = 0.0  # written as -99: <s> is never predicted
    for k in range(1, len(uninterp)):
        lower = probs[k - 1]
        probs.append({g: u + gamma[g[:-1]] * lower[g[1:]] for g, u in uninterp[k].items()})
    return probs


def build_ngram_lm(
    sentences: Iterable[Sequence[str]],
    order: int,
    fallback: tuple[float, float, float] = FALLBACK_DISCOUNTS,
) -> KneserNeyModel:
    """Estimate an interpolated modified Kneser-Ney model of the given order.

    Args:
        sentences: word lists (no ``<s>``/``</s>``), e.g. from :func:`sentences_from_lines`.
        order (int): N, 1 to 6.
        fallback: D1, D2, D3+ for orders whose count-of-counts are degenerate.

    Returns:
        the model; ``model.write_arpa(path)`` writes it.

    Raises:
        UserError: bad order, or no words at all.

    Example:
        >>> lm = build_ngram_lm([["a", "b"], ["b"]], order=2)
        >>> round(sum(lm.prob(w, ["a"]) for w in ["a", "b", "</s>", "<unk>"]), 6)
        1.0
    """
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= MAX_ORDER:
        raise UserError(f"n-gram order must be an integer from 1 to {MAX_ORDER}, got {order!r}")
    raw = count_ngrams(sentences, order)
    if not raw[0]:
        raise UserError("no words to build an n-gram language model from (empty text)")
    adjusted = adjust_counts(raw)
    discounts = estimate_discounts(adjusted, fallback)
    uninterp, gamma = estimate(adjusted, discounts)
    vocab_size = len(adjusted[0]) + 1  # words and </s>, plus <unk>; <s> was never counted
    probs = interpolate(uninterp, gamma, vocab_size)
    return KneserNeyModel(order, discounts, adjusted, uninterp, gamma, probs, vocab_size)


class NgramLM:
    """A backoff n-gram LM read from ARPA and scored in pure Python (log10 units).

    Args:
        order: highest n-gram order.
        logprobs: log10 probability per n-gram.
        backoffs: log10 backoff weight per n-gram (absent means 0).
    """

    def __init__(self, order: int, logprobs: dict[Ngram, float], backoffs: dict[Ngram, float]):
        self.order = order
        self.logprobs = logprobs
        self.backoffs = backoffs
        self.vocab = frozenset(g[0] for g in logprobs if len(g) == 1)

    @classmethod
    def load_arpa(cls, path: str | os.PathLike) -> NgramLM:
        """Read an ARPA file. Raises UserError when it is missing or malformed."""
        p = Path(path)
        if not p.is_file():
            raise UserError(f"ARPA file not found: {p}")
        declared: dict[int, int] = {}
        logprobs: dict[Ngram, float] = {}
        backoffs: dict[Ngram, float] = {}
        section = -1  # -1 before \data\, 0 in \data\, k in \k-grams:
        with open(p, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line or line == "\\end\\":
                    continue
                if line == "\\data\\":
                    section = 0
                elif line.startswith("\\") and line.endswith("-grams:"):
                    section = int(line[1:-7])
                elif section == 0 and line.startswith("ngram "):
                    k, _, c = line[6:].partition("=")
                    declared[int(k)] = int(c)
                elif section > 0:
                    fields = line.split()
                    if len(fields) not in (section + 1, section + 2):
                        raise UserError(f"{p}:{n}: expected a {section}-gram line, got {line!r}")
                    g = tuple(fields[1:section + 1])
                    logprobs[g] = float(fields[0])
                    if len(fields) == section + 2:
                        backoffs[g] = float(fields[-1])
        found = Counter(len(g) for g in logprobs)
        if not declared or any(found[k] != c for k, c in declared.items()):
            raise UserError(f"{p}: n-gram counts do not match the \\data\\ header")
        return cls(max(declared), logprobs, backoffs)

    def log10_prob(self, word: str, context: Sequence[str] = ()) -> float:
        """Backoff log10 ``p(word | context)``; unknown words count as ``<unk>``."""
        word = word if word in self.vocab else UNK
        ctx = _last(tuple(w if w in self.vocab else UNK for w in context), self.order - 1)
        penalty = 0.0
        while (ctx + (word,)) not in self.logprobs:
            if not ctx:
                return LOG10_ZERO  # only when the model lacks <unk>
            penalty += self.backoffs.get(ctx, 0.0)
            ctx = ctx[1:]
        return penalty + self.logprobs[ctx + (word,)]

    def score_sentence(self, words: Sequence[str], bos: bool = True, eos: bool = True) -> float:
        """log10 probability of a sentence, with ``<s>`` context and ``</s>`` by default."""
        history: list[str] = [BOS] if bos else []
        total = 0.0
        for w in [*words, EOS] if eos else words:
            total += self.log10_prob(w, history)
            history.append(w)
        return total
