"""LM tuning: grid-search the beam decoder's LM weight, word score and silence score on a dev
set's cached log-probs (the model runs once; each grid point re-runs only the search).

Example:
    >>> best, table = grid_search(emissions, ids, refs, rec.tokenizer, BeamConfig(lm="3gram.arpa",
    ...                           lexicon="lexicon.txt"), [0, 0.5, 1, 2], [-1, 0, 1])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from asr.decode.beam import BeamConfig, BeamDecoder, silence_token
from asr.errors import UserError
from asr.scoring import error_counts


@dataclass
class TuneGrid:
    """The values tried. ``sil_scores`` None keeps the base config's silence score."""

    lm_weights: list[float] = dataclasses.field(
        default_factory=lambda: [0.0, 0.25, 0.5, 1.0, 1.5, 2.0])
    word_scores: list[float] = dataclasses.field(default_factory=lambda: [-1.0, 0.0, 1.0, 2.0])
    sil_scores: list[float] | None = None

    def __post_init__(self) -> None:
        for name in ("lm_weights", "word_scores", "sil_scores"):
            if getattr(self, name) == []:
                raise UserError(f"the {name.replace('_', ' ')} grid is empty")


def default_sil_scores(tokenizer) -> list[float] | None:
    """The silence-score grid when none is given: for a model whose word separator is
    flashlight's silence token (character models' ``|``), penalising it trades split words
    against merged ones (AN4: 11.11% -> 10.38% WER); for other models the silence token is the
    blank, and None keeps the current value (``--sil-score``, decode.yaml or 0)."""
    return [0.0, -1.0, -2.0, -3.0] if silence_token(tokenizer) == tokenizer.separator else None


def grid_search(emissions: dict, ids: list[str], refs: list[str], tokenizer, base: BeamConfig,
                lm_weights: list[float], word_scores: list[float], log=print,
                sil_scores: list[float] | None = None) -> tuple[BeamConfig, list[dict]]:
    """Decode with every (lm_weight, word_score, sil_score); return (best config, table of
    results). ``emissions``: id -> (T', V) log-probs. ``sil_scores`` None keeps
    ``base.sil_score``. The best has the lowest WER, then CER, then the first in grid order."""
    table, best, best_key = [], base, None
    for ss in sil_scores if sil_scores is not None else [base.sil_score]:
        for lw in lm_weights:
            for ws in word_scores:
                cfg = dataclasses.replace(base, lm_weight=lw, word_score=ws, sil_score=ss,
                                          nbest=1)
                decoder = BeamDecoder(tokenizer, cfg)
                texts = [decoder(emissions[i].unsqueeze(0))[0][0].text for i in ids]
                words, chars = error_counts(refs, texts)
                table.append({"lm_weight": lw, "word_score": ws, "sil_score": ss,
                              "wer": words.rate, "cer": chars.rate})
                log(f"lm_weight {lw:g} word_score {ws:g} sil_score {ss:g}: "
                    f"%WER {100 * words.rate:.2f} %CER {100 * chars.rate:.2f}")
                key = (words.rate, chars.rate)
                if best_key is None or key < best_key:
                    best, best_key = dataclasses.replace(cfg, nbest=base.nbest), key
    return best, table
