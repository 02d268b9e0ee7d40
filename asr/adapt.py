"""Test-time speaker adaptation: each speaker's VTLN warp factor, chosen by maximum likelihood.

Vocal tract length normalisation (Lee & Rose 1996; Kaldi's ``lvtln`` recipes) warps the
frequency axis of a speaker's filterbank so that their formants sit where the model expects
them. A model trained with vocal tract length perturbation (``data.vtlp``: Jaitly & Hinton
2013) has seen every warp in its range; at test time each speaker's factor is the one under
which the model's best path is most likely. With no transcription at hand this is the
Viterbi form of Kaldi's maximum-likelihood warp search (``gmm-est-lvtln-trans`` maximises the
likelihood of the speaker's frames under the model; here the model is a CTC network, whose
frame likelihood is that of its best path):

    a* = argmax_a  sum over the speaker's utterances u and frames t of  max_k log p(k | X_a[u], t)

over a grid of factors (ties go to the factor nearest 1). An earlier variant scored the CTC
likelihood of the unwarped first-pass transcription instead, the two-pass estimate of fMLLR;
on synthetic tone speakers shifted by 0.87x and 1.15x it stayed at 1.0 for the speaker whose
first pass was wrong, which is where adaptation is needed; the best-path score found both.

Speakers are the manifest's; an utterance with none is its own speaker. The cost is one
forward pass of the set per grid point. :meth:`Recognizer.emissions` runs the search when the
model was trained with ``data.vtlp`` and ``Recognizer.vtln`` is on (``asr evaluate --vtln``).
It is off by default: on AN4 dev (two of the recipe's VTLP models combined) the search made
greedy decoding worse, 18.21% WER against 17.49% without it (recipes/an4/RESULTS.md), and it
gave no measured gain anywhere: a confident all-blank path scores well under this criterion.
The criterion needs work (e.g. scoring only non-blank frames, or the first-pass likelihood)
before it can be on by default.
"""

from __future__ import annotations

from asr.manifest import Utterance


def warp_grid(vtlp: list[float], step: float = 0.02) -> list[float]:
    """Warp factors from vtlp's low to high end in ``step`` steps, 1.0 always included."""
    lo, hi = vtlp
    n_lo, n_hi = int(round((1.0 - lo) / step)), int(round((hi - 1.0) / step))
    return [round(1.0 + k * step, 6) for k in range(-n_lo, n_hi + 1)]


def speaker_of(u: Utterance) -> str:
    return u.speaker or f"utt:{u.id}"


def named_speakers(utts: list[Utterance]) -> list[Utterance]:
    """``utts`` with each utterance that has no speaker made its own speaker."""
    return [u if u.speaker else Utterance(u.id, u.audio_path, u.duration, u.text, speaker_of(u),
                                          u.extra) for u in utts]


def search_warps(rec, utts: list[Utterance], grid: list[float]) -> dict[str, float]:
    """``{speaker: warp}`` for the speakers of ``utts`` (see the module docstring). ``rec``: a
    :class:`asr.inference.Recognizer` whose emissions run without a search of their own."""
    named = named_speakers(utts)
    spk = {u.id: u.speaker for u in named}
    score: dict[str, dict[float, float]] = {s: {} for s in spk.values()}
    for a in grid:
        rec.source.warps = {s: a for s in score}
        total = dict.fromkeys(score, 0.0)
        for ids, lp, lens in rec.emissions(named):
            best = lp.max(dim=-1).values  # (B, T'): the best path's log-prob per frame
            for b, uid in enumerate(ids):
                total[spk[uid]] += float(best[b, :int(lens[b])].sum())
        for s in score:
            score[s][a] = total[s]
    rec.source.warps = {}
    return {s: max(by_warp, key=lambda a: (by_warp[a], -abs(a - 1.0)))
            for s, by_warp in score.items()}
